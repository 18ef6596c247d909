"""Numbers on the paper people write on: POST /predict/number's own code, beside Tesseract 5.

4-digit numbers of held-out MNIST digits (never the training ones), written apart as
bench/numbers.py writes them, drawn dark on white at 4x MNIST's scale with paper around them,
and then on each kind of paper: plain; lined (light 1 px lines every 30 px, across the
digits); squared (the same lines both ways); a notebook's margin (a line down the page, left
of the number, darker than the ink); form fields (a box around each digit); a box the writer
drew around the whole number; lined paper turned 1 degree and squared paper turned 2, as a
page photographed a little crooked shows them, and lined paper turned 5 degrees; and lined
paper turned 8 degrees (more than the reader looks for: a limit, measured). Every kind has
the same numbers in the same places, so the rows differ by the paper alone. Each image goes
through exactly what the endpoint runs (predictor.Reader.read_number); Tesseract (Debian's
tesseract-ocr, `--psm 7`, digits only) reads the same images in the same run.

    python -m bench.paper [--model PATH] [--count 100] [--json reports/paper.json]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import dataset
import model
import predictor
import styles
from bench.common import load_mnist, table
from bench.numbers import ours, scores, tesseract

SCALE = 4  # the ink drawn at 4x MNIST's scale...
MARGIN = 80  # ...with this much paper around it
PITCH = 30  # px between ruled lines
LINE_LEVEL = 170  # their grey (the ink is 0 at its darkest)


def on_paper(ink: np.ndarray) -> np.ndarray:
    """A number's ink (white on black, MNIST's scale) dark on white paper, SCALE x larger,
    MARGIN px of paper around it."""
    large = Image.fromarray(ink).resize(
        (ink.shape[1] * SCALE, ink.shape[0] * SCALE), Image.Resampling.BICUBIC
    )
    return np.pad(255 - np.asarray(large), MARGIN, constant_values=255)


def lined(page: np.ndarray, both_ways: bool = False) -> np.ndarray:
    ruled = page.copy()
    ruled[5::PITCH] = np.minimum(ruled[5::PITCH], LINE_LEVEL)
    if both_ways:
        ruled[:, 5::PITCH] = np.minimum(ruled[:, 5::PITCH], LINE_LEVEL)
    return ruled


def aslant(page: np.ndarray, degrees: float, both_ways: bool = False) -> np.ndarray:
    """Lined (or squared) paper turned by some degrees under the number, as a photo of a page
    held a little crooked shows it."""
    height, width = page.shape
    lines = np.full((2 * height, 2 * width), 255, np.uint8)
    lines[5::PITCH] = LINE_LEVEL
    if both_ways:
        lines[:, 5::PITCH] = LINE_LEVEL
    turned = Image.fromarray(lines).rotate(degrees, Image.Resampling.BILINEAR, fillcolor=255)
    crop = turned.crop((width // 2, height // 2, width // 2 + width, height // 2 + height))
    return np.minimum(page, np.asarray(crop))


def margin(page: np.ndarray) -> np.ndarray:
    image = Image.fromarray(page)
    ImageDraw.Draw(image).line([(30, 0), (30, page.shape[0])], fill=60, width=4)
    return np.asarray(image)


def fields(page: np.ndarray) -> np.ndarray:
    """A box around each digit (the runs of inked columns), clear of its strokes."""
    image = Image.fromarray(page)
    draw = ImageDraw.Draw(image)
    columns = np.flatnonzero((page < 128).any(axis=0))
    for digit in np.split(columns, np.flatnonzero(np.diff(columns) > SCALE) + 1):
        box = [digit[0] - 14, MARGIN // 2, digit[-1] + 14, page.shape[0] - MARGIN // 2]
        draw.rectangle(box, outline=90, width=2)
    return np.asarray(image)


def boxed(page: np.ndarray) -> np.ndarray:
    image = Image.fromarray(page)
    height, width = page.shape
    ImageDraw.Draw(image).rectangle([20, 15, width - 20, height - 15], outline=60, width=3)
    return np.asarray(image)


PAPERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "plain": lambda page: page,
    "lined": lined,
    "squared": lambda page: lined(page, both_ways=True),
    "a notebook's margin": margin,
    "form fields, one per digit": fields,
    "a box around the number": boxed,
    "lined, turned 1 degree": lambda page: aslant(page, 1.0),
    "squared, turned 2 degrees": lambda page: aslant(page, -2.0, both_ways=True),
    "lined, turned 5 degrees": lambda page: aslant(page, 5.0),
    "lined, turned 8 degrees (not handled)": lambda page: aslant(page, 8.0),
}


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def numbers(holdout: dataset.Digits, count: int) -> tuple[list[str], list[np.ndarray]]:
    """`count` 4-digit numbers of held-out digits, written apart, on plain paper."""
    rng = np.random.default_rng(2027)
    truths, pages = [], []
    for _ in range(count):
        chosen = rng.choice(len(holdout), 4, replace=False)
        truths.append("".join(str(d) for d in holdout.labels[chosen]))
        pages.append(on_paper(styles.number(list(holdout.images[chosen]), rng, "apart")))
    return truths, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a model file (default: train one now)")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    mnist = load_mnist()
    digits = model.load(args.model) if args.model else model.train(mnist)
    reader = predictor.Reader(digits, 50_000_000)
    _, holdout = dataset.split(mnist)
    truths, pages = numbers(holdout, args.count)
    has_tesseract = shutil.which("tesseract") is not None
    rows, figures = [], {}
    for name, paper in PAPERS.items():
        images = [png(paper(page)) for page in pages]
        answers, seconds = ours(reader, images)
        whole, count, digit = scores(truths, answers)
        row: list[object] = [name, f"{whole:.1%}", f"{count:.1%}", f"{digit:.1%}"]
        row.append(f"{seconds * 1000:.1f}")
        figures[name] = {"whole": whole, "count": count, "digits": digit, "median_s": seconds}
        if has_tesseract:
            tess_whole, _, tess_digits = scores(truths, tesseract(images))
            row += [f"{tess_whole:.1%}", f"{tess_digits:.1%}"]
            figures[name].update(tesseract_whole=tess_whole, tesseract_digits=tess_digits)
        rows.append(row)
        print(f"{name}: {whole:.1%}", flush=True)
    header = ["paper", "whole right", "count right", "digits right", "median ms"]
    if has_tesseract:
        header += ["Tesseract whole", "Tesseract digits"]
    print(f"\n{args.count} numbers of 4 held-out digits, model {digits.info.version}\n")
    print(table(header, rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
