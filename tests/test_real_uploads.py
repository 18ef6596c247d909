"""The failure classes found on real uploads (bench/realworld.py), each rebuilt here from held-out
MNIST digits or painted in the test: clutter beside the digit (a badge, lettering, dots along
the edges), a grid drawn over it, strokes barely darker than the page, 1-2 px pencil, strokes
that fade, ink that differs from the page by colour only, mid-grey paper, and the shapes people
paint that MNIST's writers rarely did. Each must read as the digit itself."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

import dataset
import model
import preprocessing
import styles
from conftest import encoded, png, read_number, thin_pen

LIMIT = 50_000_000


def first_sure(
    trained: model.DigitModel, holdout: dataset.Digits, narrow: bool = False
) -> list[tuple[np.ndarray, int]]:
    """Held-out digits the model reads right and surely as MNIST images, one per class (and,
    `narrow`, no wider than they are tall)."""
    chosen: dict[int, np.ndarray] = {}
    for image, label in zip(holdout.images, holdout.labels, strict=True):
        if label in chosen:
            continue
        rows, columns = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
        if narrow and columns[-1] - columns[0] > rows[-1] - rows[0]:
            continue
        probabilities = trained.probabilities(preprocessing.preprocess(png(image), LIMIT)[None])
        if probabilities.argmax() == label and probabilities.max() > 0.9:
            chosen[int(label)] = image
    assert sorted(chosen) == list(range(10))
    return [(image, label) for label, image in sorted(chosen.items())]


@pytest.fixture(scope="module")
def sure(trained: model.DigitModel, holdout: dataset.Digits) -> list[tuple[np.ndarray, int]]:
    return first_sure(trained, holdout)


@pytest.fixture(scope="module")
def narrow(trained: model.DigitModel, holdout: dataset.Digits) -> list[tuple[np.ndarray, int]]:
    return first_sure(trained, holdout, narrow=True)


def read(trained: model.DigitModel, image: Image.Image) -> int:
    digit = preprocessing.preprocess(encoded(image), LIMIT)
    return int(trained.probabilities(digit[None]).argmax())


def drawn(digit: np.ndarray, side: int = 340) -> Image.Image:
    """The digit drawn 10x, black on white, in the middle of a square RGB canvas."""
    canvas = Image.new("RGB", (side, side), "white")
    pen = Image.fromarray(255 - (styles._pen(digit, 10) * 255).astype(np.uint8))
    canvas.paste(pen, ((side - 280) // 2, (side - 280) // 2))
    return canvas


def with_badge(digit: np.ndarray) -> Image.Image:
    """An app's coloured badge in a corner of a larger canvas ("Paint 3D" style), farther from
    the digit than half its size: nearer, a heavy mark is taken for a piece of the digit (a
    5's bar: preprocessing.JOIN_MARGIN), and on a 500 px canvas this badge was framed with the
    sample's wide 4, which the model then read as a 4 or a 9 as its training fell."""
    canvas = drawn(digit, side=640)
    ImageDraw.Draw(canvas).rectangle((568, 612, 630, 632), fill=(232, 30, 120))
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


def lettered_badge(digit: np.ndarray) -> Image.Image:
    """A thin-stroked digit and, in a corner, a heavier badge with an app's name knocked out of
    it in white: the badge is no part of the digit, though it holds more ink."""
    canvas = Image.new("RGB", (500, 500), "white")
    pen = thin_pen(digit, 10)
    canvas.paste(Image.fromarray(255 - pen * 255), (40, 40))
    draw = ImageDraw.Draw(canvas)
    draw.rounded_rectangle((360, 440, 490, 490), radius=8, fill=(232, 30, 120))
    draw.text((368, 450), "Paint X lite", fill="white", font_size=22)
    return canvas


def shrunk_lettered_badge(digit: np.ndarray) -> Image.Image:
    """A lettered badge nearer the digit, the screenshot then shrunk to half: the badge's
    letters' counters close to a pixel or two, too small to be measured as lettering's holes,
    and the badge is nearer the digit than half its size (where a heavy mark is a piece of a
    digit, preprocessing.JOIN_MARGIN)."""
    canvas = Image.new("RGB", (420, 420), "white")
    canvas.paste(drawn(digit), (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.rounded_rectangle((280, 340, 410, 390), radius=8, fill=(232, 30, 120))
    draw.text((288, 350), "Paint X lite", fill="white", font_size=22)
    return canvas.resize((210, 210), Image.Resampling.LANCZOS)


def edge_dots(digit: np.ndarray) -> Image.Image:
    """Faint grid marks: a row of small grey dots along every edge of the frame."""
    canvas = drawn(digit)
    draw = ImageDraw.Draw(canvas)
    for at in range(6, 340, 16):
        for x, y in ((at, 3), (at, 334), (3, at), (334, at)):
            draw.rectangle((x, y, x + 2, y + 2), fill=(200, 200, 200))
    return canvas


def faint_pencil(digit: np.ndarray) -> Image.Image:
    """Light-grey 1-2 px pencil lines on a white canvas."""
    canvas = np.full((340, 340), 255, np.uint8)
    canvas[30:310, 30:310] -= thin_pen(digit, 10) * 60
    return Image.fromarray(canvas).convert("RGB")


def grey_paper(digit: np.ndarray) -> Image.Image:
    """Dark pencil on mid-grey card (brown paper photographed in dim light): the page is
    neither light nor dark, so its level alone does not tell which way the ink goes."""
    ink = styles._pen(digit, 3)
    pixels = 126 - ink * 80 + np.random.default_rng(0).normal(0, 2, ink.shape)
    canvas = np.full((100, 100), 126.0)
    canvas[8:92, 8:92] = pixels
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).convert("RGB")


def through_jpeg(image: Image.Image) -> Image.Image:
    """The image as a phone saves it: a JPEG at quality 85, its blocks and ringing kept."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return Image.open(buffer)


def in_a_dim_room(digit: np.ndarray) -> Image.Image:
    """A pen's digit on white paper photographed in a dim room: the page comes out dark grey
    (a third of white), the ink a little darker, and the sensor's noise saved as a JPEG. A
    dark border is no chalkboard's here: nothing on it is lighter than the page."""
    ink = styles._pen(digit, 10)
    pixels = np.full((340, 340), 80.0)
    pixels[30:310, 30:310] -= ink * 70
    pixels += np.random.default_rng(0).normal(0, 4, pixels.shape)
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")
    return through_jpeg(photo)


def chalk_on_a_blackboard(digit: np.ndarray) -> Image.Image:
    """Chalk on a dark green board, photographed: a dark border under light strokes, whose
    wiped-off chalk leaves the board uneven and a little lighter in places."""
    rng = np.random.default_rng(0)
    smudges = ndimage.gaussian_filter(rng.normal(0, 240, (340, 340)), 20)  # a few levels
    board = np.array([40.0, 70.0, 55.0]) + smudges[..., None]
    chalk = styles._pen(digit, 10)[..., None] * 0.85
    board[30:310, 30:310] = board[30:310, 30:310] * (1 - chalk) + 225 * chalk
    board += rng.normal(0, 5, board.shape)
    return through_jpeg(Image.fromarray(np.clip(board, 0, 255).astype(np.uint8)))


def small_on_a_grey_photo(digit: np.ndarray) -> Image.Image:
    """A small digit in a large photo of a page that came out mid-grey: the ink is
    a fraction of a percent of the picture, too little for the extremes of a coarse sample to
    tell whether it is darker or lighter than the page."""
    pixels = np.full((900, 1600), 150.0)
    pixels[380:520, 730:870] -= styles._pen(digit, 5) * 110
    pixels += np.random.default_rng(0).normal(0, 4, pixels.shape)
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")
    return through_jpeg(photo)


def fading_band(digit: np.ndarray) -> Image.Image:
    """A pen that skips: across the middle of the digit its strokes are four times fainter
    (the bar of a 4, the waist of an 8)."""
    ink = styles._pen(digit, 10)
    ink[120:160] *= 0.25
    canvas = np.full((340, 340), 255, np.uint8)
    canvas[30:310, 30:310] = (255 - ink * 200).astype(np.uint8)
    return Image.fromarray(canvas)


def framed(
    picture: Image.Image,
    colour: str | tuple[int, int, int],
    left: int,
    top: int,
    right: int,
    bottom: int,
) -> Image.Image:
    """The picture set in a frame of one colour: `left`, `top`, `right` and `bottom` px wide."""
    page = Image.new("RGB", (left + picture.width + right, top + picture.height + bottom), colour)
    page.paste(picture, (left, top))
    return page


def dark_canvas_on_a_page(digit: np.ndarray) -> Image.Image:
    """A screenshot of a dark drawing app: white strokes on its black canvas, the white page
    of the app around it."""
    pen = Image.fromarray((styles._pen(digit, 10) * 255).astype(np.uint8)).convert("RGB")
    return framed(framed(pen, "black", 30, 30, 30, 30), "white", 60, 90, 60, 120)


def photo_between_bars(digit: np.ndarray) -> Image.Image:
    """A screenshot of a phone's gallery: a photo of the digit on grey paper, lit from one
    side, with black bars above and below it."""
    ink = styles._pen(digit, 10)
    light = np.linspace(200, 160, 340)[None, :]
    pixels = np.full((340, 340), 1.0) * light
    pixels[30:310, 30:310] -= ink * 120
    noise = np.random.default_rng(0).normal(0, 3, pixels.shape)
    photo = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).convert("RGB")
    return framed(photo, "black", 0, 160, 0, 160)


def canvas_in_a_dark_window(digit: np.ndarray) -> Image.Image:
    """A white canvas in an app's dark grey window."""
    return framed(drawn(digit), (60, 60, 60), 40, 70, 40, 40)


CLASSES = {
    "a badge in a corner": with_badge,
    "a lettered badge heavier than the digit": lettered_badge,
    "a lettered badge in a shrunk screenshot": shrunk_lettered_badge,
    "a grid and tick labels": under_a_grid,
    "dots along the edges": edge_dots,
    "faint grey strokes": faint_grey,
    "faint 1-px pencil": faint_pencil,
    "yellow on light blue": yellow_on_blue,
    "mid-grey paper": grey_paper,
    "a page photographed in a dim room": in_a_dim_room,
    "a small digit on a mid-grey photo": small_on_a_grey_photo,
    "chalk on a blackboard": chalk_on_a_blackboard,
    "strokes that fade in the middle": fading_band,
    "a dark app's canvas in a white page": dark_canvas_on_a_page,
    "a photo between black bars": photo_between_bars,
    "a canvas in a dark window": canvas_in_a_dark_window,
}


@pytest.mark.parametrize("make", CLASSES.values(), ids=CLASSES.keys())
def test_real_upload_troubles_read_as_the_digit(
    trained: model.DigitModel,
    sure: list[tuple[np.ndarray, int]],
    make: Callable[[np.ndarray], Image.Image],
) -> None:
    assert [read(trained, make(image)) for image, _ in sure] == list(range(10))


def painted(draw_digit: Callable[[ImageDraw.ImageDraw], None]) -> Image.Image:
    """A digit painted with a round 14 px brush, black on a white 300x300 canvas."""
    canvas = Image.new("RGB", (300, 300), "white")
    draw_digit(ImageDraw.Draw(canvas))
    return canvas


BRUSH = {"fill": "black", "width": 14}
SHAPES = {  # the digit, and how a person paints it: styles MNIST's writers rarely used
    "a 0 drawn as a tall rectangle": (
        0,
        lambda d: d.rectangle((100, 40, 200, 262), outline="black", width=14),
    ),
    "a 1 with a flag and a foot": (
        1,
        lambda d: (
            d.line([(105, 95), (165, 35), (165, 262)], **BRUSH, joint="curve"),
            d.line([(110, 262), (220, 262)], **BRUSH),
        ),
    ),
    "a 6 whose top curls like print": (
        6,
        lambda d: (
            d.ellipse((80, 140, 220, 266), outline="black", width=14),
            d.arc((80, 40, 320, 360), start=180, end=255, **BRUSH),
        ),
    ),
    "a 1 painted as a solid bar": (1, lambda d: d.rectangle((130, 40, 170, 262), fill="black")),
    "a 7 with a bar": (
        7,
        lambda d: (
            d.line([(70, 40), (230, 40), (130, 266)], **BRUSH, joint="curve"),
            d.line([(110, 150), (210, 150)], **BRUSH),
        ),
    ),
    "a 9 with a hooked tail": (
        9,
        lambda d: (
            d.ellipse((80, 34, 214, 150), outline="black", width=14),
            d.line([(207, 92), (207, 220)], **BRUSH),
            d.arc((97, 160, 217, 266), start=0, end=120, **BRUSH),
        ),
    ),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_shapes_people_draw_read_as_the_digit(
    trained: model.DigitModel, shape: tuple[int, Callable[[ImageDraw.ImageDraw], None]]
) -> None:
    digit, draw_digit = shape
    assert read(trained, painted(draw_digit)) == digit


@pytest.mark.parametrize("make", CLASSES.values(), ids=CLASSES.keys())
def test_real_upload_troubles_read_as_the_digit_by_the_number_reader(
    trained: model.DigitModel,
    narrow: list[tuple[np.ndarray, int]],
    make: Callable[[np.ndarray], Image.Image],
) -> None:
    """A single digit sent to /predict/number comes back as that one digit, whatever the
    trouble: the clutter a single upload is cleared of stays off the line, a grid's pieces
    are one digit. (Digits no wider than tall: a thin pen makes a wide 6 wider than a digit
    is read whole, README.)"""
    assert [read_number(trained, encoded(make(image))) for image, _ in narrow] == [
        str(label) for label in range(10)
    ]
