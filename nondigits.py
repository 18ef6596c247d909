"""Images that hold no digit, for testing that the service refuses to guess.

Each function returns the bytes of an image file. They are the kinds of thing people upload
by mistake (a blank page, a photo of a textured surface) or that probe the service.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _gray_noise(seed: int, spread: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(128 + rng.normal(0, spread, (200, 200)), 0, 255).astype(np.uint8)


def _row_of_dots() -> bytes:
    image = Image.new("L", (300, 120), 255)
    draw = ImageDraw.Draw(image)
    for k in range(12):
        draw.ellipse((10 + 24 * k, 50, 22 + 24 * k, 62), fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _speck() -> np.ndarray:
    page = np.full((300, 300), 255, np.uint8)
    page[100:103, 150:152] = 0
    return page


def _pixel() -> np.ndarray:
    frame = np.zeros((28, 28), np.uint8)
    frame[10, 10] = 255
    return frame


def _square() -> np.ndarray:
    page = np.full((200, 200), 255, np.uint8)
    page[50:150, 60:140] = 0
    return page


def _photo_like() -> np.ndarray:
    rng = np.random.default_rng(0)
    coarse = (np.clip(rng.normal(0, 1, (60, 80)), -2, 2) * 40 + 120).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((400, 300), Image.Resampling.BICUBIC))


NON_DIGITS: dict[str, bytes] = {
    "blank white page": _png(np.full((200, 200), 255, np.uint8)),
    "blank black 28x28": _png(np.zeros((28, 28), np.uint8)),
    "uniform grey": _png(np.full((40, 40), 128, np.uint8)),
    "a speck on a page": _png(_speck()),
    "one lit pixel in 28x28": _png(_pixel()),
    "uniform noise": _png(np.random.default_rng(0).integers(0, 256, (200, 200)).astype(np.uint8)),
    "grey sensor noise": _png(_gray_noise(1, 20)),
    "a solid square": _png(_square()),
    "a checkerboard": _png((np.indices((200, 200)).sum(axis=0) // 20 % 2 * 255).astype(np.uint8)),
    "a brightness gradient": _png(
        np.linspace(0, 255, 200)[None, :].repeat(200, 0).astype(np.uint8)
    ),
    "stripes": _png(
        np.where(np.arange(200) % 10 == 0, 0, 255)[None, :].repeat(200, 0).astype(np.uint8)
    ),
    "a row of dots": _row_of_dots(),
    "blurry photo-like texture": _png(_photo_like()),
}
