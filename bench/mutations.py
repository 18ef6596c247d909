"""Mutated images against the service's decoders: one small file of every served format,
each mutated `--count` times, read by the service's own code in child processes capped as a
server's are.

    python -m bench.mutations [--count 2000] [--json reports/mutations.json]

The files: a held-out digit written on a page of noisy paper (400x300), saved as a PNG, JPEG,
GIF, BMP, WebP, TIFF (LZW), AVIF and HEIC. A mutant is its format's file with 1-16 changes at
random places (seeded by its number): a byte replaced, up to 16 bytes cut out, up to 8 random
bytes put in, or 4 bytes set to one of 00, 01, 7f, 80, ff (a length or a count at its limits).
Each is read by `preprocessing.prepare_many` (what the prediction processes run on an upload:
decode, prepare, and whatever error that upload alone gets) in a child process whose address
space is capped at 4 GB, as `bench.bad_images` caps the server. The child reports each mutant
as it is done; a child that dies (a decoder's crash) or says nothing for `HANG` seconds is
counted against that mutant and a new child goes on with the next one.

It must show no crash, no hang and nothing over `SLOW` seconds (exit status 1 otherwise). The
table gives, per format, how the mutants were answered (read as a digit, or the error a client
would get) and the slowest.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

import dataset
from bench.common import ROOT, load_mnist, table

FORMATS = {
    "PNG": {},
    "JPEG": {"quality": 85},
    "GIF": {},
    "BMP": {},
    "WEBP": {"quality": 80},
    "TIFF": {"compression": "tiff_lzw"},
    "AVIF": {"quality": 60},
    "HEIF": {"quality": 60},
}
ADDRESS_SPACE = 4 * 2**30  # as bench.bad_images caps the server
HANG = 10.0  # seconds without an answer: the child is stopped and the mutant counted as a hang
SLOW = 2.0  # seconds: slower than this is a failure, as in bench.bad_images
MAX_PIXELS = 50_000_000  # the service's default MAX_IMAGE_PIXELS


def page(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The digit written 200 px high on a page of noisy paper, 400x300."""
    ink = np.asarray(Image.fromarray(digit).resize((200, 200), Image.Resampling.BILINEAR))
    paper = np.clip(rng.normal(215, 8, (300, 400)), 0, 255)
    paper[50:250, 100:300] *= 1 - 0.85 * ink / 255
    return Image.fromarray(paper.astype(np.uint8)).convert("RGB")


def seed_file(image: Image.Image, kind: str) -> bytes:
    buffer = io.BytesIO()
    (image.convert("P") if kind == "GIF" else image).save(buffer, kind, **FORMATS[kind])
    return buffer.getvalue()


def mutant(seed: bytes, number: int) -> bytes:
    """The seed file with 1-16 changes at random places, the same for the same number."""
    rng = random.Random(number)
    data = bytearray(seed)
    for _ in range(rng.choice((1, 2, 4, 8, 16))):
        at, what = rng.randrange(len(data)), rng.random()
        if what < 0.6:
            data[at] = rng.randrange(256)
        elif what < 0.75:
            del data[at : at + rng.randrange(1, 17)]
        elif what < 0.9:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        else:
            data[at : at + 4] = bytes([rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF))]) * 4
    return bytes(data)


def worker(seed_path: Path, start: int, stop: int) -> None:
    """Read mutants start..stop-1 of the seed, one line each: number, outcome, seconds."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    import preprocessing  # the service's own code, after the cap

    seed = seed_path.read_bytes()
    for number in range(start, stop):
        data = mutant(seed, number)
        began = time.perf_counter()
        (outcome,) = preprocessing.prepare_many([data], MAX_PIXELS)
        took = time.perf_counter() - began
        said = "read" if isinstance(outcome, tuple) else type(outcome).__name__
        print(number, said, f"{took:.4f}", flush=True)


def run(seed_path: Path, count: int) -> tuple[Counter[str], float, list[str]]:
    """Every mutant of one seed, through as many children as crashes need; the outcomes, the
    slowest read, and what failed."""
    outcomes: Counter[str] = Counter()
    slowest, failures, number = 0.0, [], 0
    while number < count:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.mutations", "--worker", str(seed_path),
             str(number), str(count)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        while number < count:
            ready, _, _ = select.select([child.stdout], [], [], HANG)
            line = child.stdout.readline() if ready else ""
            if not line:  # the child died on this mutant, or hangs on it
                if ready:
                    child.wait()
                    said = f"crash ({child.returncode})"
                else:
                    child.kill()
                    child.wait()
                    said = f"hang (over {HANG:g} s)"
                outcomes[said] += 1
                failures.append(f"{seed_path.stem} mutant {number}: {said}")
                number += 1
                break
            index, said, took = line.split()
            number = int(index) + 1
            outcomes[said] += 1
            slowest = max(slowest, float(took))
            if float(took) > SLOW:
                failures.append(f"{seed_path.stem} mutant {index}: {float(took):.2f} s")
        else:
            child.wait()
    return outcomes, slowest, failures


def main() -> int:
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="mutants of each format")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _, holdout = dataset.split(load_mnist())
    picture = page(holdout.images[0], np.random.default_rng(0))
    rows, figures, failures = [], {}, []
    with tempfile.TemporaryDirectory() as folder:
        for kind in FORMATS:
            seed_path = Path(folder) / kind.lower()
            seed_path.write_bytes(seed_file(picture, kind))
            began = time.perf_counter()
            outcomes, slowest, failed = run(seed_path, args.count)
            failures += failed
            figures[kind] = {"outcomes": dict(outcomes), "slowest": slowest}
            said = ", ".join(f"{name}: {n}" for name, n in outcomes.most_common())
            rows.append([kind, seed_path.stat().st_size, args.count, said, f"{slowest:.3f}"])
            print(f"{kind}: {said} ({time.perf_counter() - began:.0f} s)", flush=True)
    print()
    print(table(["format", "bytes", "mutants", "answered", "slowest s"], rows))
    for failure in failures:
        print("FAILED:", failure)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"formats": figures, "failures": failures}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
