"""Real uploads: the service's own code on ../shared/realdigits-dev (628 digits people drew,
photographed or scanned, from 58 public digit-recognizer projects).

Each file's bytes go through exactly what POST /predict/mnist runs (predictor.Reader: decode,
preprocess, classify). Reports accuracy overall and per kind, refusals ("No digit found"), a
confusion table, how often a confident answer is right, and a contact sheet of every mistake
(the upload, the 28x28 the model saw, label, answer, confidence) in reports/realworld-mistakes.png.
Then the same uploads go through what POST /predict/number runs (a single digit works too):
how many are read as the one digit itself, per kind, and every upload read otherwise.

    python -m bench.realworld [--model PATH] [--data DIR] [--json reports/realworld.json]

Without --model the service's pipeline is trained on MNIST_DATA_DIR as first boot does. The
set is a yardstick only: never train on it, never tune a rule to one of its files.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

import model
import predictor
from bench.common import ROOT, load_mnist, table
from errors import NoDigitFound, ServiceError
from predictor import NumberResult, Result

KINDS = ("canvas", "paint", "photo", "scan")
TILE = 112


@dataclass(frozen=True)
class Read:
    """One upload of the set and what the service made of it."""

    file: str
    kind: str
    label: int
    data: bytes
    outcome: Result | ServiceError
    seconds: float  # decode, preprocess and classify, as one upload

    @property
    def answer(self) -> int | None:
        return None if isinstance(self.outcome, ServiceError) else self.outcome.digit

    @property
    def right(self) -> bool:
        return self.answer == self.label


def read_all(reader: predictor.Reader, folder: Path) -> list[Read]:
    with (folder / "labels.csv").open() as labels:
        entries = list(csv.DictReader(labels))
    reads = []
    for entry in entries:
        data = (folder / entry["file"]).read_bytes()
        start = time.perf_counter()
        (outcome,) = reader.predict([data])
        seconds = time.perf_counter() - start
        reads.append(
            Read(entry["file"], entry["kind"], int(entry["label"]), data, outcome, seconds)
        )
    return reads


def score(reads: list[Read]) -> list[object]:
    right = sum(read.right for read in reads)
    refused = sum(isinstance(read.outcome, NoDigitFound) for read in reads)
    ms = np.median([read.seconds for read in reads]) * 1000
    return [len(reads), f"{right / len(reads):.1%}", right, refused, f"{ms:.2f}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "realdigits-dev")
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "realworld.json")
    args = parser.parse_args()
    served = model.load(args.model) if args.model else model.train(load_mnist(), progress=print)
    reader = predictor.Reader(served, 50_000_000)
    reads = read_all(reader, args.data)

    kinds = sorted({read.kind for read in reads})
    summary = [["all", *score(reads)]]
    summary += [[kind, *score([r for r in reads if r.kind == kind])] for kind in kinds]
    print(f"model {served.info.version}, {len(reads)} real uploads\n")
    header = ["kind", "uploads", "accuracy", "right", "refused (no digit)", "median ms"]
    print(table(header, summary))

    confusion = np.zeros((10, 11), dtype=int)  # the last column: refused, or another error
    for read in reads:
        confusion[read.label, 10 if read.answer is None else read.answer] += 1
    header = ["label \\ answer", *map(str, range(10)), "refused"]
    print("\n" + table(header, [[d, *confusion[d]] for d in range(10)]))

    sure = [r for r in reads if isinstance(r.outcome, Result) and r.outcome.confidence >= 0.95]
    sure_right = sum(read.right for read in sure)
    print(
        f"\nconfidence 0.95 and above: {len(sure) / len(reads):.1%} of answers, "
        f"of those right: {sure_right / max(1, len(sure)):.1%}"
    )

    mistakes = [read for read in reads if not read.right]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    sheet_path = args.json.parent / "realworld-mistakes.png"
    contact_sheet(mistakes).save(sheet_path)
    print(f"\n{len(mistakes)} mistakes, drawn in {sheet_path}:")
    for read in mistakes:
        print(f"  {read.kind:6} label {read.label}: {said(read.outcome):34} {read.file}")
    numbers = {read.file: said_number(reader.read_number(read.data)) for read in reads}
    misread = [read for read in reads if numbers[read.file] != str(read.label)]
    rows = [
        [kind, len(of), sum(numbers[read.file] == str(read.label) for read in of)]
        for kind, of in [("all", reads), *((k, [r for r in reads if r.kind == k]) for k in kinds)]
    ]
    print("\nThe same uploads sent to POST /predict/number:\n")
    print(table(["kind", "uploads", "read as the one digit"], rows))
    for read in misread:
        alone = "/predict/mnist: right" if read.right else "/predict/mnist: wrong too"
        answer = numbers[read.file]
        print(f"  {read.kind:6} label {read.label}: {answer:10} ({alone}) {read.file}")
    args.json.write_text(
        json.dumps(
            {
                "model": served.info.version,
                "summary": summary,
                "confusion": confusion.tolist(),
                "confident": [len(sure), sure_right],
                "mistakes": {read.file: said(read.outcome) for read in mistakes},
                "numbers": {
                    "read as the digit": rows,
                    "misread": {read.file: numbers[read.file] for read in misread},
                },
            },
            indent=1,
        )
    )
    return 0


def said(outcome: Result | ServiceError) -> str:
    if isinstance(outcome, ServiceError):
        return outcome.detail
    return f"{outcome.digit} at {outcome.confidence:.2f}"


def said_number(outcome: NumberResult | ServiceError) -> str:
    return outcome.detail if isinstance(outcome, ServiceError) else outcome.number


def contact_sheet(mistakes: list[Read]) -> Image.Image:
    """Per mistake: the upload (on grey, so transparency shows), the 28x28 the model saw, and
    a caption."""
    columns = 4
    cell_w, cell_h = 2 * TILE + 8, TILE + 30
    rows = max(1, -(-len(mistakes) // columns))
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for n, read in enumerate(mistakes):
        x, y = (n % columns) * cell_w, (n // columns) * cell_h
        upload = ImageOps.exif_transpose(Image.open(io.BytesIO(read.data))).convert("RGBA")
        upload.thumbnail((TILE, TILE))
        backdrop = Image.new("RGBA", upload.size, (160, 160, 160, 255))
        sheet.paste(Image.alpha_composite(backdrop, upload).convert("RGB"), (x, y))
        if isinstance(read.outcome, Result):
            seen = Image.fromarray(read.outcome.pixels).resize(
                (TILE, TILE), Image.Resampling.NEAREST
            )
            sheet.paste(seen.convert("RGB"), (x + TILE + 4, y))
        caption = f"{read.kind} label {read.label}: " + (
            "refused" if read.answer is None else said(read.outcome)
        )
        draw.text((x + 2, y + TILE + 2), caption, fill="black")
        draw.text((x + 2, y + TILE + 15), read.file[:38], fill="gray")
    return sheet


if __name__ == "__main__":
    raise SystemExit(main())
