"""No digit, no guess: how often real digits are refused, and non-digits accepted.

Every MNIST digit on hand is uploaded in MNIST format, and --per-style of them in each
real-upload style; each refusal ("No digit found in the image.") is a false refusal. Then
each image of `nondigits.py` is uploaded; each acceptance is a guess where none is due. With
--model, each non-digit also goes through what POST /predict/number runs, and what it answers
is shown beside.

    python -m bench.no_digit [--per-style 1500] [--model PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import model
import predictor
import preprocessing
import styles
from bench.common import load_mnist, table
from errors import NoDigitFound, ServiceError
from nondigits import NON_DIGITS


def refused(data: bytes) -> bool:
    try:
        preprocessing.preprocess(data, 50_000_000)
    except NoDigitFound:
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-style", type=int, default=1500)
    parser.add_argument("--model", type=Path, help="also read the non-digits as numbers")
    args = parser.parse_args()
    reader = predictor.Reader(model.load(args.model), 50_000_000) if args.model else None
    digits = load_mnist().train

    rows = []
    for name, style in styles.STYLES.items():
        count = len(digits) if name == "mnist_png" else args.per_style
        rng = np.random.default_rng(5)
        refusals = sum(refused(style(image, rng)) for image in digits.images[:count])
        rows.append([f"digits: {name}", count, refusals, f"{refusals / count:.2%}", ""])
    for name, data in NON_DIGITS.items():
        accepted = not refused(data)
        number = "" if reader is None else as_number(reader.read_number(data))
        rows.append([f"non-digit: {name}", 1, "accepted" if accepted else "refused", "", number])
    header = ["upload", "images", "refused", "false refusal rate", "/predict/number"]
    print(table(header, rows))


def as_number(outcome: predictor.NumberResult | ServiceError) -> str:
    return "refused" if isinstance(outcome, ServiceError) else f"read {outcome.number}"


if __name__ == "__main__":
    main()
