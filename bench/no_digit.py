"""No digit, no guess: how often real digits are refused, and non-digits accepted.

Every MNIST digit on hand is uploaded in MNIST format, and --per-style of them in each
real-upload style; each refusal ("No digit found in the image.") is a false refusal. Then
each image of `nondigits.py` is uploaded; each acceptance is a guess where none is due.

    python -m bench.no_digit [--per-style 1500]
"""

from __future__ import annotations

import argparse

import numpy as np

import preprocessing
import styles
from bench.common import load_mnist, table
from nondigits import NON_DIGITS


def refused(data: bytes) -> bool:
    try:
        preprocessing.preprocess(data, 50_000_000)
    except preprocessing.NoDigitFound:
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-style", type=int, default=1500)
    args = parser.parse_args()
    digits = load_mnist().train

    rows = []
    for name, style in styles.STYLES.items():
        count = len(digits) if name == "mnist_png" else args.per_style
        rng = np.random.default_rng(5)
        refusals = sum(refused(style(image, rng)) for image in digits.images[:count])
        rows.append([f"digits: {name}", count, refusals, f"{refusals / count:.2%}"])
    for name, data in NON_DIGITS.items():
        accepted = not refused(data)
        rows.append([f"non-digit: {name}", 1, "accepted" if accepted else "refused", ""])
    print(table(["upload", "images", "refused", "false refusal rate"], rows))


if __name__ == "__main__":
    main()
