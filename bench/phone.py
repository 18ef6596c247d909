"""A phone's photo as the phone stores it: a 12-megapixel HEIC (iPhones, many Android phones),
AVIF or JPEG, what each costs the service in-process and what it reads.

    python -m bench.phone --model PATH [--count 20] [--rounds 3]

Each of `--count` held-out digits is written on a sheet as a phone photographs it (4000x3000,
about 900 px high, uneven light, sensor noise: `bench.load.sheet`) and stored on its
side with the orientation that turns it upright, as a phone held upright does: a JPEG at
quality 90 with its EXIF tag, a HEIC and an AVIF at quality 50 with an 'irot' box, and a JPEG
at quality 90 with a gain map behind it, as a recent Android phone stores a photo (Ultra HDR;
Pillow opens it as an MPO file). Each file is
read by `predictor.Reader.predict` (what POST /predict/mnist runs: decode, prepare, classify),
BLAS on one thread as in the prediction processes; the formats take turns, file by file, round
by round, so a change of the machine's pace touches all alike. The table gives the median file
size, the median over files of each file's best time, and how many were read right.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

# BLAS on one thread, as in the prediction processes: set before numpy starts it
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np
from PIL import Image

import dataset
import model
import predictor
from bench import load, roundtrip
from bench.common import load_mnist, table
from errors import ServiceError

FORMATS = {"JPEG, quality 90": ("JPEG", 90), "HEIC, quality 50": ("HEIF", 50),
           "AVIF, quality 50": ("AVIF", 50),
           "JPEG with a gain map (Ultra HDR), quality 90": ("MPO", 90)}  # fmt: skip


def stored(photo: Image.Image, kind: str, quality: int) -> bytes:
    """As the phone stores it: on its side, with the orientation that turns it upright, and an
    Ultra HDR JPEG ("MPO") with its gain map behind it, a quarter of its size."""
    more: dict[str, object] = {}
    if kind == "MPO":
        turned = photo.transpose(Image.Transpose.ROTATE_90).convert("L")  # as stored
        more = {
            "save_all": True,
            "append_images": [turned.resize((photo.height // 4, photo.width // 4))],
        }
    return roundtrip.stored_turned(photo, kind, quality=quality, **more)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reader = predictor.Reader(model.load(args.model), 50_000_000)
    _, holdout = dataset.split(load_mnist())
    rng = np.random.default_rng(0)
    files: dict[str, list[bytes]] = {name: [] for name in FORMATS}
    for index in range(args.count):
        photo = load.sheet(holdout.images[index], rng)
        for name, (kind, quality) in FORMATS.items():
            files[name].append(stored(photo, kind, quality))
    labels = holdout.labels[: args.count]

    seconds: dict[str, list[list[float]]] = {name: [[] for _ in labels] for name in FORMATS}
    right = dict.fromkeys(FORMATS, 0)
    for round_ in range(args.rounds):
        for index, label in enumerate(labels):
            for name in FORMATS:
                start = time.perf_counter()
                (outcome,) = reader.predict([files[name][index]])
                seconds[name][index].append(time.perf_counter() - start)
                if round_ == 0:
                    right[name] += not isinstance(outcome, ServiceError) and outcome.digit == label
    rows = [
        [
            name,
            f"{statistics.median(len(data) for data in files[name]) / 1e6:.2f}",
            f"{statistics.median(min(times) for times in seconds[name]) * 1000:.0f}",
            f"{right[name]} of {len(labels)}",
        ]
        for name in FORMATS
    ]
    print(table(["a 12 MP phone photo", "MB", "median ms", "read right"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
