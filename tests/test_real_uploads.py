"""The failure classes found on real uploads (bench/realworld.py), each rebuilt here from held-out
MNIST digits: clutter beside the digit, a grid drawn over it, strokes barely darker than the
page, ink that differs from the page by colour only. Each must read as the digit itself."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

import dataset
import model
import preprocessing
import styles
from conftest import png

LIMIT = 50_000_000


@pytest.fixture(scope="module")
def sure(trained: model.DigitModel, holdout: dataset.Digits) -> list[tuple[np.ndarray, int]]:
    """Held-out digits the model reads right and surely as MNIST images, one per class."""
    chosen: dict[int, np.ndarray] = {}
    for image, label in zip(holdout.images, holdout.labels, strict=True):
        probabilities = trained.probabilities(preprocessing.preprocess(png(image), LIMIT)[None])
        if label not in chosen and probabilities.argmax() == label and probabilities.max() > 0.9:
            chosen[int(label)] = image
    assert sorted(chosen) == list(range(10))
    return [(image, label) for label, image in sorted(chosen.items())]


def read(trained: model.DigitModel, image: Image.Image) -> int:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    digit = preprocessing.preprocess(buffer.getvalue(), LIMIT)
    return int(trained.probabilities(digit[None]).argmax())


def drawn(digit: np.ndarray, side: int = 340) -> Image.Image:
    """The digit drawn 10x, black on white, in the middle of a square RGB canvas."""
    canvas = Image.new("RGB", (side, side), "white")
    pen = Image.fromarray(255 - (styles._pen(digit, 10) * 255).astype(np.uint8))
    canvas.paste(pen, ((side - 280) // 2, (side - 280) // 2))
    return canvas


def with_badge(digit: np.ndarray) -> Image.Image:
    """An app's coloured badge in a corner of a larger canvas ("Paint 3D" style)."""
    canvas = drawn(digit, side=500)
    ImageDraw.Draw(canvas).rectangle((428, 472, 490, 492), fill=(232, 30, 120))
    return canvas


def under_a_grid(digit: np.ndarray) -> Image.Image:
    """A plot of the digit: white grid lines across it, tick labels along two edges."""
    canvas = drawn(digit)
    draw = ImageDraw.Draw(canvas)
    for at in range(30, 340, 40):
        draw.line((0, at, 339, at), fill="white")
        draw.line((at, 0, at, 339), fill="white")
        draw.rectangle((4, at, 9, at + 7), fill=(40, 40, 40))  # tick labels, left
        draw.rectangle((at, 330, at + 5, 337), fill=(40, 40, 40))  # and bottom
    return canvas


def faint_grey(digit: np.ndarray) -> Image.Image:
    """28x28, strokes at most 16 grey levels darker than a flat white page."""
    return Image.fromarray(255 - (digit.astype(np.float32) * 16 / 255).astype(np.uint8)).convert(
        "RGB"
    )


def yellow_on_blue(digit: np.ndarray) -> Image.Image:
    """Yellow ink on a light-blue page: as bright as each other, apart in colour only."""
    ink = styles._pen(digit, 10)[..., None]
    page, pen = np.array([160, 220, 230]), np.array([250, 200, 20])
    pixels = page * (1 - ink) + pen * ink
    canvas = Image.new("RGB", (340, 340), tuple(page))
    canvas.paste(Image.fromarray(pixels.astype(np.uint8)), (30, 30))
    return canvas


CLASSES = {
    "a badge in a corner": with_badge,
    "a grid and tick labels": under_a_grid,
    "faint grey strokes": faint_grey,
    "yellow on light blue": yellow_on_blue,
}


@pytest.mark.parametrize("make", CLASSES.values(), ids=CLASSES.keys())
def test_real_upload_troubles_read_as_the_digit(
    trained: model.DigitModel,
    sure: list[tuple[np.ndarray, int]],
    make: Callable[[np.ndarray], Image.Image],
) -> None:
    assert [read(trained, make(image)) for image, _ in sure] == list(range(10))
