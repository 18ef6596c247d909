"""Accuracy, calibration, training cost and serving cost of the service's model, with baselines.

In one run: the service's pipeline is trained as at first boot (in a child process, for clean
time and peak-memory figures) on the training part of MNIST and scored on the held-out part;
the baselines are trained and scored on the same split: a plain SGDClassifier on raw pixels
and scikit-learn's RBF SVC on deskewed digits. Then the service model's file size, load time
and serving latency, and its training cost on 60,000 digits (the 8,000 training digits,
each repeated with small random shifts).

    python -m bench.accuracy [--scale 60000] [--skip-scale]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.svm import SVC

import dataset
import model
import preprocessing
import reports
import styles
from bench.common import ROOT, load_mnist, mnist_dir, table
from features import Deskew

TRAIN_CHILD = """
import sys, time, resource, pathlib
import numpy as np
sys.path.insert(0, {root!r})
import dataset, model
mnist = dataset.read_folder(pathlib.Path({data!r}))
repeat = {repeat}
if repeat > 1:  # more training digits: each repeated, shifted by up to 1 px each way
    rng = np.random.default_rng(0)
    training, holdout = dataset.split(mnist)
    shifts = [tuple(rng.integers(-1, 2, size=2)) for _ in range(repeat - 1)]
    images = np.concatenate([training.images] + [
        np.roll(training.images, shift, axis=(1, 2)) for shift in shifts
    ])
    labels = np.tile(training.labels, repeat)
    mnist = dataset.Mnist(dataset.Digits(images, labels), holdout, "repeated")
start = time.perf_counter()
trained = model.train(mnist, progress=lambda message: None)
seconds = time.perf_counter() - start
model.save(trained, pathlib.Path({path!r}))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(seconds, peak, trained.info.training_digits, trained.info.holdout_accuracy)
"""


def train_in_child(path: Path, repeat: int = 1) -> tuple[float, float, int, float]:
    """(training seconds, peak resident MB, training digits, held-out accuracy)."""
    code = TRAIN_CHILD.format(root=str(ROOT), data=str(mnist_dir()), path=str(path), repeat=repeat)
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    seconds, peak, digits, accuracy = out.split()
    return float(seconds), float(peak), int(digits), float(accuracy)


def timed(function, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=60_000)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()

    mnist = load_mnist()
    training, holdout = dataset.split(mnist)
    inputs, holdout_inputs = model.as_inputs(training), model.as_inputs(holdout)
    print(f"{len(training):,} training digits, {len(holdout):,} held out\n", flush=True)

    rows = []
    plain, seconds = timed(
        SGDClassifier(loss="log_loss", random_state=0).fit, inputs, training.labels
    )
    scored = reports.evaluate(plain.predict_proba(holdout_inputs), holdout.labels)
    rows.append(
        [
            "SGDClassifier on raw pixels (baseline)",
            scored.accuracy,
            scored.calibration_error,
            seconds,
        ]
    )

    deskew = Deskew()
    svc, seconds = timed(SVC(kernel="rbf").fit, deskew.transform(inputs), training.labels)
    predicted = svc.predict(deskew.transform(holdout_inputs))
    rows.append(
        [
            "SVC (RBF) on deskewed digits (baseline)",
            float(np.mean(predicted == holdout.labels)),
            None,
            seconds,
        ]
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        seconds, peak_mb, _, _ = train_in_child(path)
        served, load_seconds = timed(model.load, path)
        size_mb = os.path.getsize(path) / 1e6
    holdout_set, probabilities = model.holdout_probabilities(served, mnist)
    scored = reports.evaluate(probabilities, holdout_set.labels)
    rows.append(
        [f"service model {served.info.version}", scored.accuracy, scored.calibration_error, seconds]
    )

    print(table(
        ["model", "held-out accuracy", "calibration error (ECE, 15 bins)", "training s"],
        [[name, f"{acc:.2%}", "-" if ece is None else f"{ece:.4f}", f"{s:.1f}"]
         for name, acc, ece, s in rows],
    ))  # fmt: skip
    print(f"\nservice model: peak memory while training {peak_mb:,.0f} MB, file {size_mb:.1f} MB, "
          f"load {load_seconds * 1000:.0f} ms\n")  # fmt: skip
    print(scored.summary(), "\n", flush=True)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == holdout_set.labels
    bands = [(0.95, 1.01, "0.95 and above"), (0.8, 0.95, "0.80 to 0.95"),
             (0.6, 0.8, "0.60 to 0.80"), (0.0, 0.6, "below 0.60")]  # fmt: skip
    print(table(
        ["confidence", "share of answers", "of those, right"],
        [[name, f"{np.mean(band):.1%}", f"{np.mean(right[band]):.1%}" if band.any() else "-"]
         for low, high, name in bands
         for band in [(confidence >= low) & (confidence < high)]],
    ), "\n", flush=True)  # fmt: skip

    # serving: one MNIST-format PNG at a time, then batches of 256
    uploads = [styles.mnist_png(image, None) for image in holdout.images[:1000]]
    single = []
    for data in uploads:
        start = time.perf_counter()
        served.probabilities(preprocessing.preprocess(data, 50_000_000)[np.newaxis])
        single.append(time.perf_counter() - start)
    batch_model, batch_full = [], []
    digits = holdout.images[:256] / np.float32(255)
    for _ in range(15):
        _, seconds = timed(served.probabilities, digits)
        batch_model.append(seconds)
        start = time.perf_counter()
        batch = np.stack(preprocessing.preprocess_many(uploads[:256], 50_000_000))  # type: ignore[arg-type]
        served.probabilities(batch)
        batch_full.append(time.perf_counter() - start)
    ms = lambda values: f"{statistics.median(values) * 1000:.2f}"  # noqa: E731
    print(table(
        ["serving, in-process", "median ms"],
        [["one image: decode + preprocess + predict", ms(single)],
         ["batch of 256 digits: predict", ms(batch_model)],
         ["batch of 256 PNGs: decode + preprocess + predict", ms(batch_full)]],
    ))  # fmt: skip

    if not args.skip_scale:
        repeat = max(1, round(args.scale / len(training)))
        with tempfile.TemporaryDirectory() as tmp:
            seconds, peak_mb, digits_used, accuracy = train_in_child(
                Path(tmp) / "model.joblib", repeat
            )
        print(f"\nscaling: {digits_used:,} training digits ({repeat} shifted copies of each): "
              f"training {seconds:.0f} s, peak memory {peak_mb:,.0f} MB, "
              f"held-out accuracy {accuracy:.2%}")  # fmt: skip


if __name__ == "__main__":
    main()
