"""Numbers: POST /predict/number's own code on handwritten numbers, beside Tesseract 5.

Numbers of 2, 4 and 8 held-out MNIST digits (never the training ones), written apart (uneven
spacing, a drifting baseline), touching (neighbours' boxes overlapping by 1 px, moved closer
until their strokes touch), in pieces (each digit cut by a 1 px line), and apart with a point
between two of them (a decimal point: `styles.number_with_point`) or a dash (a date, a phone
number: `styles.number_with_dash`), each rendered as
MNIST renders (white on black), as a paper photo, a canvas export and in thick marker
(styles.py); and 4-digit numbers of real digits: the ink of uploads from ../shared/realdigits-dev
cut out and set side by side on one white page.

Each image goes through exactly what the endpoint runs (predictor.Reader.read_number: decode,
segment, frame, classify). Reported: whole-number accuracy; beside it, how many of the numbers
have every digit read right by the model alone (each uploaded as its own 28x28 MNIST image),
what the model leaves to be won by segmentation (other renderings frame the digits anew, so
may differ from it by a digit or two); how often the count of digits is
right, digit accuracy (1 - edit distance / length), the median time per image; and the same
images read by Tesseract (Debian's tesseract-ocr, `--psm 7`, digits only: the OCR a user
would otherwise reach for; the point or the dash allowed too in the rows with one), all images
of a cell in one Tesseract run.

    python -m bench.numbers [--model PATH] [--count 100] [--json reports/numbers.json]
                            [--lengths 2,4,8] [--layouts apart,touching,pieces] [--draw N]

A row's rng is its own (seeded by the row), so the first numbers of a longer run are the
numbers of a shorter one, and a subset of rows is the same rows as in the full table. The
bench's own draw (0) is the one the settings of segmentation.py were looked at on for weeks;
`--draw N` draws other numbers of the same held-out digits, to tell what carries over from
what was tuned to those numbers.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import dataset
import model
import predictor
import preprocessing
import styles
from bench.common import ROOT, load_mnist, table
from errors import ServiceError

RENDERINGS: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "mnist": styles.mnist_png,
    "paper photo": styles.paper_photo,
    "canvas": styles.canvas_png,
    "marker": styles.thick_marker,
}
LENGTHS = (2, 4, 8)
# "point": apart, with a decimal point between two digits; "dash": apart, with a dash
LAYOUTS = (*styles.LAYOUTS, "point", "dash")
REAL = ROOT.parent / "shared" / "realdigits-dev"
REAL_HEIGHT = 96  # px a real digit is scaled to in a composed number


def edit_distance(one: str, two: str) -> int:
    previous = list(range(len(two) + 1))
    for i, a in enumerate(one, 1):
        current = [i]
        for j, b in enumerate(two, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


def scores(truths: list[str], answers: list[str]) -> tuple[float, float, float]:
    """Whole numbers right, digit counts right, digit accuracy."""
    whole = np.mean([t == a for t, a in zip(truths, answers, strict=True)])
    count = np.mean([len(t) == len(a) for t, a in zip(truths, answers, strict=True)])
    digits = np.mean(
        [
            max(0, len(t) - edit_distance(t, a)) / len(t)
            for t, a in zip(truths, answers, strict=True)
        ]
    )
    return float(whole), float(count), float(digits)


def ours(reader: predictor.Reader, images: list[bytes]) -> tuple[list[str], float]:
    answers, seconds = [], []
    for data in images:
        start = time.perf_counter()
        outcome = reader.read_number(data)
        seconds.append(time.perf_counter() - start)
        answers.append("" if isinstance(outcome, ServiceError) else outcome.number)
    return answers, float(np.median(seconds))


def tesseract(images: list[bytes], signs: str = "") -> list[str]:
    """Each image read by Tesseract as one line of digits (and of `signs`: a point, a dash); all
    in one run."""
    allowed = "0123456789" + signs
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, data in enumerate(images):
            path = Path(folder) / f"{index:05d}.png"
            image = Image.open(io.BytesIO(data))
            image.save(path)  # as the user has it (Tesseract reads PNG; JPEGs re-saved losslessly)
            paths.append(str(path))
        listing = Path(folder) / "images.txt"
        listing.write_text("\n".join(paths) + "\n")
        run = subprocess.run(
            ["tesseract", str(listing), "stdout", "--psm", "7",
             "-c", f"tessedit_char_whitelist={allowed}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    pages = run.stdout.split("\f")[: len(images)]
    return ["".join(c for c in page if c in allowed) for page in pages]


def synthetic(
    holdout: dataset.Digits,
    count: int,
    lengths: tuple[int, ...] = LENGTHS,
    layouts: tuple[str, ...] = LAYOUTS,
    draw: int = 0,
) -> list[tuple[str, list[str], list[bytes], np.ndarray]]:
    return [
        (f"{length} {layout}, {name}", *cell(holdout, length, layout, name, count, draw))
        for length in lengths
        for layout in layouts
        for name in RENDERINGS
    ]


def cell(
    holdout: dataset.Digits, length: int, layout: str, rendering: str, count: int, draw: int = 0
) -> tuple[list[str], list[bytes], np.ndarray]:
    """One row of the table: `count` numbers of `length` held-out digits, their truths, images
    and which held-out digits they are, (count, length) (the same for every run: the seed is
    the row's, and the draw's when it is not the bench's own, 0)."""
    seed = [length, LAYOUTS.index(layout), len(rendering)]
    rng = np.random.default_rng([*seed, draw] if draw else seed)
    render = RENDERINGS[rendering]
    truths, images, drawn = [], [], []
    for _ in range(count):
        chosen = rng.choice(len(holdout), length, replace=False)
        truth = "".join(str(d) for d in holdout.labels[chosen])
        if layout in ("point", "dash"):
            written = styles.number_with_point if layout == "point" else styles.number_with_dash
            ink, after = written(list(holdout.images[chosen]), rng)
            truth = f"{truth[:after]}{'.' if layout == 'point' else '-'}{truth[after:]}"
        else:
            ink = styles.number(list(holdout.images[chosen]), rng, layout)
        truths.append(truth)
        images.append(render(ink, rng))
        drawn.append(chosen)
    return truths, images, np.array(drawn).reshape(count, length)


def real_numbers(count: int, length: int = 4, draw: int = 0) -> tuple[list[str], list[bytes]]:
    """Numbers set from the ink of real uploads, side by side on one white page."""
    with (REAL / "labels.csv").open() as labels:
        entries = list(csv.DictReader(labels))
    inks: list[tuple[int, np.ndarray]] = []
    for entry in entries:
        image = preprocessing.decode((REAL / entry["file"]).read_bytes(), 50_000_000)
        try:
            inks.append((int(entry["label"]), preprocessing.digit_ink(image)))
        except ServiceError:
            continue
    rng = np.random.default_rng([2026, draw] if draw else 2026)
    truths, images = [], []
    for _ in range(count):
        chosen = rng.choice(len(inks), length, replace=False)
        pieces = []
        for index in chosen:
            ink = inks[index][1]
            width = max(1, round(ink.shape[1] * REAL_HEIGHT / ink.shape[0]))
            pieces.append(np.asarray(Image.fromarray(ink, "F").resize((width, REAL_HEIGHT))))
        gaps = rng.integers(12, 40, size=length + 1)
        page = np.zeros((REAL_HEIGHT + 60, sum(p.shape[1] for p in pieces) + gaps.sum()))
        left = gaps[0]
        for piece, gap in zip(pieces, gaps[1:], strict=True):
            top = 30 + int(rng.integers(-6, 7))
            page[top : top + REAL_HEIGHT, left : left + piece.shape[1]] = piece
            left += piece.shape[1] + gap
        buffer = io.BytesIO()
        paper = np.clip(250 - 220 * np.clip(page, 0, 1), 0, 255).astype(np.uint8)
        Image.fromarray(paper).save(buffer, format="PNG")
        truths.append("".join(str(inks[i][0]) for i in chosen))
        images.append(buffer.getvalue())
    return truths, images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--count", type=int, default=100, help="numbers per cell")
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "numbers.json")
    parser.add_argument(
        "--lengths", default=",".join(map(str, LENGTHS)), help="digits per number, e.g. 4 or 2,4,8"
    )
    parser.add_argument(
        "--layouts", default=",".join(LAYOUTS), help="e.g. apart, or apart,touching,point"
    )
    parser.add_argument(
        "--draw",
        type=int,
        default=0,
        help="another draw of numbers than the bench's own (0), to confirm figures on numbers "
        "no setting was ever tuned on",
    )
    args = parser.parse_args()
    given = args.lengths.split(",")
    lengths = tuple(int(length) for length in given if length.isdigit())
    layouts = tuple(args.layouts.split(","))
    wrong_lengths = len(lengths) < len(given) or not set(lengths) <= set(LENGTHS)
    if wrong_lengths or not set(layouts) <= set(LAYOUTS):
        parser.error(f"lengths are among {LENGTHS}, layouts among {LAYOUTS}")
    mnist = load_mnist()
    served = model.load(args.model) if args.model else model.train(mnist, progress=print)
    reader = predictor.Reader(served, 50_000_000)
    holdout = dataset.split(mnist)[1]
    # what the model leaves to segmentation: numbers whose every digit it reads right alone,
    # uploaded as the 28x28 MNIST image it is (MNIST's form passes through unchanged)
    alone = served.probabilities(model.as_inputs(holdout)).argmax(axis=1) == holdout.labels
    cells: list[tuple[str, list[str], list[bytes], np.ndarray | None]] = [
        *synthetic(holdout, args.count, lengths, layouts, args.draw)
    ]
    if REAL.is_dir() and 4 in lengths and "apart" in layouts:
        cells.append(("4 real digits, apart", *real_numbers(args.count, draw=args.draw), None))
    baseline = shutil.which("tesseract") is not None
    print(f"model {served.info.version}; {args.count} numbers per row, draw {args.draw}; "
          f"Tesseract: {'yes' if baseline else 'not installed'}\n")  # fmt: skip
    rows, results = [], {}
    for name, truths, images, drawn in cells:
        answers, seconds = ours(reader, images)
        whole, count, digits = scores(truths, answers)
        ceiling = None if drawn is None else float(alone[drawn].all(axis=1).mean())
        row: list[object] = [name, f"{whole:.1%}", "—" if ceiling is None else f"{ceiling:.1%}",
                             f"{count:.1%}", f"{digits:.1%}", f"{seconds * 1000:.1f}"]  # fmt: skip
        result: dict[str, object] = {
            "whole": whole,
            "every_digit_alone": ceiling,
            "count": count,
            "digits": digits,
            "median_ms": seconds * 1000,
        }
        if baseline:
            signs = "".join(sorted({sign for truth in truths for sign in truth if sign in ".-"}))
            theirs = scores(truths, tesseract(images, signs))
            row += [f"{theirs[0]:.1%}", f"{theirs[2]:.1%}"]
            result["tesseract"] = dict(zip(("whole", "count", "digits"), theirs, strict=True))
        rows.append(row)
        results[name] = result
        print(rows[-1], flush=True)
    header = ["numbers", "whole right", "each digit alone", "count right", "digits right",
              "median ms"]  # fmt: skip
    if baseline:
        header += ["Tesseract whole", "Tesseract digits"]
    print()
    print(table(header, rows))
    args.json.parent.mkdir(exist_ok=True)
    report = {"model": served.info.version, "draw": args.draw, "cells": results}
    args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
