"""PNG decoding: libspng (the service's path for plain PNGs) against Pillow alone, same run.

    python -m bench.decode [--rounds 15] [--cache DIR] [--json reports/decode.json]

`preprocessing.decode` hands a plain PNG (grey, colour or colour with alpha at 8 bits a
sample, with no transparency chunk, animation or orientation) to libspng and every other file
to Pillow. This decodes three sets of files both ways, Pillow alone being the service's own
decode with libspng refusing every file (so it falls back, as for a file libspng cannot read):

- canvas exports: the 4-digit canvas numbers of bench.numbers (810x420 RGBA);
- the PNG uploads of ../shared/realdigits-dev (photos, scans, drawings people sent);
- every PNG of Pillow's own Tests/images (odd, broken and exotic files; bench.bad_images
  downloads it).

Every file must decode to the same mode, size and pixels both ways, or fail both ways with
the same error, with one exception: a file libspng reads and Pillow refuses (a last chunk cut
short after complete pixels) must give the pixels Pillow gives when told to read truncated
files. Files that differ otherwise are listed, and the exit status is 1 if there are any.

Times are interleaved (the two decoders alternate, file by file, round by round), so a change
of the machine's pace between rounds touches both alike: per set, the median over files of
each file's median time, and the median of the per-file ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pyspng
from PIL import ImageFile

import dataset
import preprocessing
from bench import bad_images, numbers
from bench.common import ROOT, load_mnist, table
from errors import ServiceError

MAX_PIXELS = 50_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _refuse(data: bytes, format: str | None = None) -> np.ndarray:
    raise RuntimeError("refused: Pillow alone")


def pillow_only() -> contextlib.AbstractContextManager[object]:
    """decode as if libspng refused every file: Pillow alone (a plain function stands in,
    so the baseline's times carry no mock's cost)."""
    return mock.patch.object(pyspng, "load", _refuse)


def outcome(data: bytes) -> tuple[object, ...]:
    """What decode makes of a file: its mode, size and pixels, or its error."""
    try:
        image = preprocessing.decode(data, MAX_PIXELS)
    except ServiceError as error:
        return ("error", type(error).__name__, str(error))
    return ("image", image.mode, image.size, image.tobytes())


@contextlib.contextmanager
def pillow_lenient() -> Iterator[None]:
    """Pillow alone, reading what it can of truncated files."""
    with pillow_only():
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = False


def timed(data: bytes) -> float:
    start = time.perf_counter()
    preprocessing.decode(data, MAX_PIXELS)
    return time.perf_counter() - start


def compare(files: list[tuple[str, bytes]], rounds: int) -> dict[str, object]:
    """Same outcome both ways, and (for files that decode) the interleaved times."""
    differ: list[str] = []
    refused: list[str] = []  # refused: read here, refused by Pillow (as Pillow reads it leniently)
    decodable = []
    for name, data in files:
        with pillow_only():
            theirs = outcome(data)
        ours = outcome(data)
        if ours != theirs and ours[0] == "image" and theirs[0] == "error":
            with pillow_lenient():
                lenient = outcome(data)
            (refused if ours == lenient else differ).append(name)
        elif ours != theirs:
            differ.append(name)
        elif ours[0] == "image":
            decodable.append(data)
    pillow_times: list[list[float]] = [[] for _ in decodable]  # each file's times, by round
    service_times: list[list[float]] = [[] for _ in decodable]
    for _ in range(rounds):
        for i, data in enumerate(decodable):
            with pillow_only():
                pillow_times[i].append(timed(data))
            service_times[i].append(timed(data))
    result: dict[str, object] = {"files": len(files), "differ": differ, "refused": refused}
    if rounds and decodable:
        pillow = [statistics.median(t) for t in pillow_times]
        service = [statistics.median(t) for t in service_times]
        result |= {
            "decoded": len(decodable),
            "pillow_ms": statistics.median(pillow) * 1000,
            "service_ms": statistics.median(service) * 1000,
            "ratio": statistics.median(s / p for s, p in zip(service, pillow, strict=True)),
        }
    return result


def canvas_exports(count: int) -> list[tuple[str, bytes]]:
    _, holdout = dataset.split(load_mnist())
    truths, images, _ = numbers.cell(holdout, 4, "apart", "canvas", count)
    return [(f"canvas {truth}", image) for truth, image in zip(truths, images, strict=True)]


def real_pngs(folder: Path) -> list[tuple[str, bytes]]:
    files = [(path.name, path.read_bytes()) for path in sorted(folder.iterdir())]
    return [(name, data) for name, data in files if data.startswith(PNG_SIGNATURE)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds over each set")
    parser.add_argument("--canvas", type=int, default=30, help="canvas exports to decode")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "realdigits-dev")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "digit-bench", help="Pillow sdist"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    corpus = [(name, data) for name, data in bad_images.corpus(args.cache)]
    sets = {
        "canvas exports (810x420 RGBA)": (canvas_exports(args.canvas), args.rounds),
        "real uploads, PNG": (real_pngs(args.data), args.rounds),
        "Pillow's Tests/images, PNG": (
            [(name, data) for name, data in corpus if data.startswith(PNG_SIGNATURE)],
            args.rounds,
        ),
        "Pillow's Tests/images, other files": (
            [(name, data) for name, data in corpus if not data.startswith(PNG_SIGNATURE)],
            0,
        ),
    }
    results = {name: compare(files, rounds) for name, (files, rounds) in sets.items()}
    rows = []
    for name, result in results.items():
        timing = (
            [f"{result['pillow_ms']:.2f}", f"{result['service_ms']:.2f}", f"{result['ratio']:.2f}x"]
            if "ratio" in result
            else ["", "", ""]
        )
        counts = [len(result[key]) for key in ("differ", "refused")]  # type: ignore[arg-type]
        rows.append([name, result["files"], *counts, *timing])
    header = ["files", "count", "outcome differs", "read, Pillow refused", "Pillow ms",
              "service ms", "ratio (median)"]  # fmt: skip
    print(table(header, rows))
    for name, result in results.items():
        for key in ("differ", "refused"):
            for file in result[key]:  # type: ignore[attr-defined]
                print(f"{key}: {name}: {file}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    if any(result["differ"] for result in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
