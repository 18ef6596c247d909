"""Render real MNIST digits the way people actually upload them, to test preprocessing honestly.

Each style takes a 28x28 uint8 MNIST digit (white on black) and a seeded random generator and
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
    side = digit.shape[0] * scale
    large = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    values = np.asarray(large, dtype=np.float32) / 255.0
    return np.clip((values - 0.5) * 4.0 + 0.5, 0.0, 1.0)


def mnist_png(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """The digit exactly as MNIST stores it: 28x28, white on black, 8-bit grey PNG."""
    return _encode(Image.fromarray(digit), "PNG")


def paper_photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark ink on a photographed sheet: tinted paper, uneven light, sensor noise, JPEG."""
    ink = _pen(digit, 10)  # 280 px
    height, width = 360, 320
    top, left = rng.integers(20, height - 300), rng.integers(10, width - 290)
    canvas = np.zeros((height, width), dtype=np.float32)
    canvas[top : top + 280, left : left + 280] = ink
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
    canvas = np.ones((320, 320), dtype=np.float32)
    canvas[20:300, 20:300] -= ink
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
