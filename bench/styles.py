"""Accuracy on real-upload styles versus the same digits uploaded in MNIST format.

Trains the service's pipeline on the training part of MNIST (as first boot does), then renders
each of N held-out digits in every style of `styles.py`, runs the bytes through the service's
own preprocessing and model, and reports accuracy per style and its gap to MNIST format.

    python -m bench.styles [--digits 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import dataset
import model
import preprocessing
import styles
from bench.common import load_mnist, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--digits", type=int, default=1000)
    args = parser.parse_args()

    mnist = load_mnist()
    trained = model.train(mnist, progress=lambda message: print(message, flush=True))
    _, holdout = dataset.split(mnist)
    sample = holdout.take(slice(0, args.digits))

    results = {}
    for name, style in styles.STYLES.items():
        rng = np.random.default_rng(7)
        digits, failures, seconds = [], 0, 0.0
        for image in sample.images:
            data = style(image, rng)
            start = time.perf_counter()
            try:
                digits.append(preprocessing.preprocess(data, 50_000_000))
            except preprocessing.NoDigitFound:
                failures += 1
                digits.append(np.zeros((28, 28), np.float32))
            seconds += time.perf_counter() - start
        predicted = trained.probabilities(np.stack(digits)).argmax(axis=1)
        accuracy = float(np.mean(predicted == sample.labels))
        results[name] = (accuracy, failures, seconds / len(sample) * 1000)

    base = results["mnist_png"][0]
    rows = [
        [name, f"{acc:.2%}", f"{(acc - base) * 100:+.2f}", failures, f"{ms:.2f}"]
        for name, (acc, failures, ms) in results.items()
    ]
    print(f"\nmodel {trained.info.version}, {len(sample)} held-out digits per style\n")
    print(
        table(
            [
                "style",
                "accuracy",
                "points vs MNIST format",
                "no digit found",
                "preprocess ms/image",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
