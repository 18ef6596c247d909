"""Render real MNIST digits the way people actually upload them, to test preprocessing honestly.

Each style takes a 28x28 uint8 MNIST digit (white on black; `paper_photo`, `canvas_png` and
`thick_marker` take a row of them, a number, as well) and a seeded random generator and
returns the bytes of an image file: a photo of paper, a browser-canvas PNG, and so on. Accuracy
on a style, compared with the same digits uploaded in MNIST format, measures how much the
preprocessing loses on that kind of upload.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

Style = Callable[[np.ndarray, np.random.Generator], bytes]


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _pen(digit: np.ndarray, scale: int) -> np.ndarray:
    """The digit redrawn at `scale` times its size as a crisp pen stroke (0..1, ink = 1).

    Smooth upscaling then a soft threshold at half intensity turns MNIST's blurry 28 px strokes
    into the sharp-edged strokes of a high-resolution photo or drawing, of the same width.
    """
    height, width = digit.shape
    size = (width * scale, height * scale)
    large = Image.fromarray(digit).resize(size, Image.Resampling.BICUBIC)
    values = np.asarray(large, dtype=np.float32) / 255.0
    return np.clip((values - 0.5) * 4.0 + 0.5, 0.0, 1.0)


def mnist_png(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """The digit exactly as MNIST stores it: 28x28, white on black, 8-bit grey PNG."""
    return _encode(Image.fromarray(digit), "PNG")


def paper_photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark ink on a photographed sheet: tinted paper, uneven light, sensor noise, JPEG."""
    ink = _pen(digit, 10)  # 280 px for a digit
    height, width = ink.shape[0] + 80, ink.shape[1] + 40
    top = rng.integers(20, height - ink.shape[0] - 20)
    left = rng.integers(10, width - ink.shape[1] - 10)
    canvas = np.zeros((height, width), dtype=np.float32)
    canvas[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    canvas = ndimage.gaussian_filter(canvas, 1.2)  # focus blur
    rows, cols = np.mgrid[0:height, 0:width] / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    light = 0.92 - 0.35 * (np.cos(angle) * rows + np.sin(angle) * cols)  # a lamp to one side
    paper = light * (1.0 - 0.78 * canvas) + rng.normal(0, 0.025, canvas.shape)
    tint = np.array([1.0, 0.96, 0.88])  # warm paper, blue-ish ink
    rgb = np.clip(paper[..., None] * tint, 0, 1)
    return _encode(Image.fromarray((rgb * 255).astype(np.uint8), "RGB"), "JPEG", quality=75)


def canvas_png(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A browser canvas export: transparent background, black strokes with anti-aliased alpha."""
    alpha = _pen(digit, 10)
    rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)  # transparent pixels are (0, 0, 0, 0)
    rgba[..., 3] = np.round(alpha * 255).astype(np.uint8)
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def small_corner(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A small digit (about 40 px) near a corner of a large white frame."""
    ink = _pen(digit, 2)  # a 56 px frame, the digit about 40 px tall
    frame = np.ones((480, 640), dtype=np.float32)
    top, left = rng.integers(5, 40), rng.integers(5, 40)
    if rng.random() < 0.5:
        left = 640 - 56 - left
    frame[top : top + 56, left : left + 56] -= 0.85 * ink
    return _encode(Image.fromarray((frame * 255).astype(np.uint8)), "PNG")


def thick_marker(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A felt-tip marker on white: strokes about twice MNIST's width, black on white, RGB PNG."""
    ink = _pen(digit, 10)
    ink = ndimage.grey_dilation(ink, footprint=_disk(9))
    canvas = np.ones((ink.shape[0] + 40, ink.shape[1] + 40), dtype=np.float32)
    canvas[20:-20, 20:-20] -= ink
    rgb = np.repeat(canvas[..., None], 3, axis=2)
    return _encode(Image.fromarray((rgb * 255).astype(np.uint8), "RGB"), "PNG")


def rotated(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A dark-on-white drawing turned by up to 15 degrees either way."""
    ink = Image.fromarray((_pen(digit, 8) * 255).astype(np.uint8))
    angle = rng.uniform(-15, 15)
    ink = ink.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    paper = 255 - np.asarray(ink)
    return _encode(Image.fromarray(paper.astype(np.uint8)), "PNG")


def blurred(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A slightly out-of-focus dark-on-light scan."""
    ink = Image.fromarray((_pen(digit, 8) * 255).astype(np.uint8))
    ink = ink.filter(ImageFilter.GaussianBlur(radius=rng.uniform(3.0, 5.0)))
    paper = 240 - (np.asarray(ink, dtype=np.float32) * 0.85)
    return _encode(Image.fromarray(paper.astype(np.uint8)), "PNG")


LAYOUTS = ("apart", "touching", "pieces")
MARGIN = 4  # px around a composed number, at MNIST's scale
MAX_DRIFT = 3  # px the baseline wanders up or down along a number


def number(digits: list[np.ndarray], rng: np.random.Generator, layout: str = "apart") -> np.ndarray:
    """MNIST digits written side by side as one number, as a uint8 image (white on black, at
    MNIST's scale), for the styles above to render. The baseline drifts by a pixel at a time;
    `layout` is how neighbours stand:

    - "apart": 3 to 8 px of paper between neighbours' ink (uneven spacing);
    - "touching": each digit's box overlapping the one before by 1 px, and moved further left,
      by up to a quarter of its width, until their strokes touch;
    - "pieces": apart, and each digit cut through near its middle by a 1 px line at a random
      angle, so most come in two or more pieces (a skipping pen, a bar lifted off).
    """
    return number_layers(digits, rng, layout).max(axis=0).astype(np.uint8)


def number_with_point(
    digits: list[np.ndarray], rng: np.random.Generator, after: int | None = None
) -> tuple[np.ndarray, int]:
    """`number` written apart with a point after one of its digits (a decimal point; after
    `after` of them, by default any but the last), and after how many digits it is: a dot a
    little wider than MNIST's pen (2.4 to 4.4 px), on the baseline of the digits beside it or up
    to 2.5 px above it, about midway in a gap of 8 to 14 px (a writer leaves the point room)."""
    after = int(rng.integers(1, len(digits))) if after is None else after
    layers = number_layers(digits, rng, "apart", wider_after=after)
    ink = layers.max(axis=0)
    one, two = layers[after - 1], layers[after]
    right = np.flatnonzero(one.any(axis=0))[-1] + 1
    left = np.flatnonzero(two.any(axis=0))[0]
    base = (np.flatnonzero(one.any(axis=1))[-1] + np.flatnonzero(two.any(axis=1))[-1]) / 2
    centre = ((right + left) / 2 + rng.uniform(-1, 1), base + rng.uniform(-2.5, 0.5))
    radius = rng.uniform(1.2, 2.2)
    rows, cols = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]]
    distance = np.hypot(rows - centre[1], cols - centre[0])
    dot = np.clip(radius + 0.5 - distance, 0.0, 1.0) * 255  # its edge anti-aliased
    return np.maximum(ink, dot).astype(np.uint8), after


def number_with_dash(
    digits: list[np.ndarray], rng: np.random.Generator, after: int | None = None
) -> tuple[np.ndarray, int]:
    """`number` written apart with a dash after one of its digits (a date, a phone number; after
    `after` of them, by default any but the last), and after how many digits it is: a stroke
    6 to 9 px long and 1.5 to 2.5 px thick, at its neighbours' mid-height (give or take 2 px),
    midway in a gap of 14 to 20 px (a writer leaves the dash room)."""
    after = int(rng.integers(1, len(digits))) if after is None else after
    layers = number_layers(digits, rng, "apart", wider_after=after, wider=(14, 21))
    ink = layers.max(axis=0)
    one, two = layers[after - 1], layers[after]
    right = np.flatnonzero(one.any(axis=0))[-1] + 1
    left = np.flatnonzero(two.any(axis=0))[0]
    rows = [np.flatnonzero(layer.any(axis=1)) for layer in (one, two)]
    middle = (rows[0][0] + rows[0][-1] + rows[1][0] + rows[1][-1]) / 4
    centre = ((right + left) / 2 + rng.uniform(-1, 1), middle + rng.uniform(-2, 2))
    # 3 px of paper or more each side of it
    length, thickness = min(rng.uniform(6, 9), left - right - 8), rng.uniform(1.5, 2.5)
    rows_, cols = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]]
    along = np.maximum(np.abs(cols - centre[0]) - length / 2, 0.0)
    across = np.maximum(np.abs(rows_ - centre[1]) - thickness / 2, 0.0)
    dash = np.clip(1.0 - np.hypot(along, across), 0.0, 1.0) * 255  # its edge anti-aliased
    return np.maximum(ink, dash).astype(np.uint8), after


def number_layers(
    digits: list[np.ndarray],
    rng: np.random.Generator,
    layout: str = "apart",
    wider_after: int | None = None,
    wider: tuple[int, int] = (8, 15),
) -> np.ndarray:
    """`number`, each digit on a layer of its own: (len(digits), height, width) float64, the
    number the maximum over the layers (what each digit contributes where neighbours touch).
    Apart, the gap after `wider_after` digits is `wider` px (8 to 14 by default: room for a
    point)."""
    inks = [_columns(_cut(digit, rng) if layout == "pieces" else digit) for digit in digits]
    height = SIDE + 2 * (MAX_DRIFT + MARGIN)
    canvas = np.zeros((height, sum(ink.shape[1] for ink in inks) + 15 * len(inks) + 2 * MARGIN))
    layers = np.zeros((len(inks), *canvas.shape))
    drift, right = 0, MARGIN
    for index, ink in enumerate(inks):
        drift = int(np.clip(drift + rng.integers(-1, 2), -MAX_DRIFT, MAX_DRIFT))
        top = MARGIN + MAX_DRIFT + drift
        if index == 0:
            left = right
        elif layout == "touching":
            left = _touching(canvas, ink, top, right - 1)
        elif index == wider_after:
            left = right + int(rng.integers(*wider))
        else:
            left = right + int(rng.integers(3, 9))
        region = canvas[top : top + SIDE, left : left + ink.shape[1]]
        np.maximum(region, ink, out=region)
        layers[index, top : top + SIDE, left : left + ink.shape[1]] = ink
        right = max(right, left + ink.shape[1])
    return layers[:, :, : right + MARGIN]


SIDE = 28


def _columns(digit: np.ndarray) -> np.ndarray:
    """The digit's columns that hold ink."""
    cols = np.flatnonzero(digit.any(axis=0))
    return digit[:, cols[0] : cols[-1] + 1].astype(np.float64)


def _touching(canvas: np.ndarray, ink: np.ndarray, top: int, left: int) -> int:
    """Where a digit's left edge goes for its strokes to touch the ink already on `canvas`:
    `left` (its box overlapping the one before by 1 px) or further left, by at most a quarter
    of its width (people write close, not over each other); `left` when they touch nowhere
    within that."""
    strong = ndimage.binary_dilation(ink > 127, structure=np.ones((3, 3)))
    for shift in range(ink.shape[1] // 4 + 1):
        at = max(0, left - shift)
        below = canvas[top : top + SIDE, at : at + ink.shape[1]] > 127
        if (below & strong[:, : below.shape[1]]).any():
            return at
    return left


def _cut(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit with a 1 px line through a point near its middle erased, at a random angle."""
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    angle = rng.uniform(0, np.pi)
    row, col = 14 + rng.uniform(-3, 3), 14 + rng.uniform(-3, 3)
    distance = np.abs((rows - row) * np.cos(angle) - (cols - col) * np.sin(angle))
    cut = digit.copy()
    cut[distance < 0.75] = 0
    return cut


def _disk(radius: int) -> np.ndarray:
    rows, cols = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return rows**2 + cols**2 <= radius**2


STYLES: dict[str, Style] = {
    "mnist_png": mnist_png,
    "paper_photo": paper_photo,
    "canvas_png": canvas_png,
    "small_corner": small_corner,
    "thick_marker": thick_marker,
    "rotated": rotated,
    "blurred": blurred,
}
