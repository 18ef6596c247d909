"""Where touching digits are lost: in the cuts tried, in reading the parts, or in choosing.

For numbers of held-out MNIST digits (bench/numbers.py's layouts, at MNIST's scale, each digit
on a layer of its own: styles.number_layers), the parts the search of `segmentation.read`
chooses among (`segmentation.candidates`) are checked against the truth:

- **cuts right**: every group of the line can be read as a run of parts, left to right, each
  holding one of its digits (at least OWN of that digit's ink, and that digit at least SHARE
  of the part's ink: slivers of a neighbour allowed);
- **reading there**: a run of parts, each holding most of one of the group's digits (more of it
  than of any other digit, and more than half of it), that the model reads as those digits,
  framed as the search frames parts;
- **read right**: what `POST /predict/number` answers for the number rendered as an MNIST
  upload (predictor.Reader.read_number).

"Reading there" bounds what any way of scoring the parts could read (a search can only choose
a reading that is there); "cuts right" says how often the cuts themselves part the digits
cleanly. The ink is the layers' own (no upload decoded): the figures are those of the cuts,
not of finding the ink.

Then the same numbers as uploads (MNIST, canvas and marker, as bench/numbers.py renders them),
read as `POST /predict/number` reads them:

- **among the candidates**: every group of the line the search finds in the upload
  (`segmentation.locate`) has a run of parts whose classes, as the model reads them, spell the
  digits whose ink is centred in the group's box: a reading the search could choose;
- **read right**: what it chose.

The difference is what choosing among the parts loses.

    python -m bench.cuts --model PATH [--count 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import dataset
import model
import predictor
import preprocessing
import segmentation
import styles
from bench.common import load_mnist, table
from bench.numbers import RENDERINGS
from errors import NoDigitFound, ServiceError
from segmentation import owner

OWN = 0.8  # a part cut right holds this much of its digit's ink...
SHARE = 0.75  # ...and its digit this much of the part's ink
ROWS = [(2, "apart"), (2, "touching"), (4, "touching"), (8, "touching")]
# Renderings of a number whose digits' places in the upload follow from the layers': (scale,
# margin) of styles.mnist_png, canvas_png and thick_marker (the paper photo places it at random)
PLACED = {"mnist": (1, 0), "canvas": (10, 0), "marker": (10, 20)}


def runs(width: int, parts: list[tuple[tuple[int, int], int]], digits: list[int]) -> bool:
    """Whether parts ((start, stop), the digit it holds) cover a group's columns in a run that
    holds its digits, in order."""
    reached = {(0, 0)}  # (column, how many of the digits so far)
    for (start, stop), held in sorted(parts, key=lambda part: part[0][1]):
        for column, count in list(reached):
            if column == start and count < len(digits) and digits[count] == held:
                reached.add((stop, count + 1))
    return (width, len(digits)) in reached


def check(served: model.DigitModel, layers: np.ndarray, labels: list[int]) -> tuple[bool, bool]:
    """(cuts right, reading there) for one number."""
    ink = (layers.max(axis=0) / 255).astype(np.float32)
    try:
        groups = segmentation.candidates(segmentation.line_of(ink, 20))
    except (NoDigitFound, segmentation.TooManyDigits):
        return False, False
    seen: list[int] = []
    cuts_right = reading_there = True
    for (top, bottom, left, right), parts in groups:
        box = layers[:, top:bottom, left:right]
        mine = [d for d in range(len(labels)) if box[d].sum() > 0.5 * layers[d].sum()]
        seen += mine
        held = []  # the parts holding most of one digit, and which
        for cut, values in parts:
            whose = owner(values, box, 0.5, 0.5)
            if whose is not None:
                held.append((cut, whose, values))
        read = classes(served, [(cut, values) for cut, _, values in held])
        clean = [(cut, whose) for cut, whose, values in held
                 if cut in read and owner(values, box, OWN, SHARE) is not None]  # fmt: skip
        most = [(cut, whose) for cut, whose, _ in held if read.get(cut) == labels[whose]]
        width = right - left
        cuts_right &= runs(width, clean, mine)
        reading_there &= runs(width, most, mine)
    everyone = sorted(seen) == list(range(len(labels)))
    return cuts_right and everyone, reading_there and everyone


def among_candidates(
    served: model.DigitModel,
    upload: bytes,
    layers: np.ndarray,
    labels: list[int],
    rendering: str,
) -> bool:
    """Whether the search of `POST /predict/number` could read an upload of the number right:
    each group of its line has a run of parts whose classes spell the digits centred in the
    group's box (digits in no group: no)."""
    scale, margin = PLACED[rendering]
    masses = layers.sum(axis=1)  # (digits, columns)
    columns = np.arange(layers.shape[2]) + 0.5
    centres = margin + scale * (masses @ columns) / masses.sum(axis=1)
    image = preprocessing.decode(upload, 50_000_000, segmentation.SIDE)
    try:
        line = segmentation.locate(image, 20)
    except (NoDigitFound, segmentation.TooManyDigits):
        return False
    seen = 0
    for group, (_, parts) in zip(line.groups, segmentation.candidates(line), strict=True):
        box = line.box(group)
        mine = [labels[d] for d, x in enumerate(centres) if box.x <= x < box.x + box.width]
        seen += len(mine)
        read = classes(served, parts)
        if not runs(group.span[3] - group.span[2], list(read.items()), mine):
            return False
    return seen == len(labels)


def classes(
    served: model.DigitModel, parts: list[tuple[tuple[int, int], np.ndarray]]
) -> dict[tuple[int, int], int]:
    """The class the model reads in each part (cut, its ink) that frames as a digit, framed
    as the search frames the parts it tries."""
    framed, cuts = [], []
    for cut, values in parts:
        try:
            framed.append(segmentation.frame_part(values))
        except NoDigitFound:
            continue
        cuts.append(cut)
    if not framed:
        return {}
    read = served.probabilities(np.stack(framed)).argmax(axis=1)
    return {cut: int(digit) for cut, digit in zip(cuts, read, strict=True)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    served = model.load(args.model)
    reader = predictor.Reader(served, 50_000_000)
    holdout = dataset.split(load_mnist())[1]
    rows: list[list[object]] = []
    for length, layout in ROWS:
        rng = np.random.default_rng([length, styles.LAYOUTS.index(layout), 7])
        cuts = there = right = 0
        among = dict.fromkeys(PLACED, 0)
        chosen_right = dict.fromkeys(PLACED, 0)
        for _ in range(args.count):
            chosen = rng.choice(len(holdout), length, replace=False)
            labels = [int(d) for d in holdout.labels[chosen]]
            layers = styles.number_layers(list(holdout.images[chosen]), rng, layout)
            one, two = check(served, layers, labels)
            cuts, there = cuts + one, there + two
            number = layers.max(axis=0).astype(np.uint8)
            upload = styles.mnist_png(number, rng)
            outcome = reader.read_number(upload)
            truth = "".join(map(str, labels))
            right += not isinstance(outcome, ServiceError) and outcome.number == truth
            for rendering in PLACED:
                if rendering != "mnist":  # the MNIST upload is the one just read
                    upload = RENDERINGS[rendering](number, rng)
                    outcome = reader.read_number(upload)
                among[rendering] += among_candidates(served, upload, layers, labels, rendering)
                chosen_right[rendering] += (
                    not isinstance(outcome, ServiceError) and outcome.number == truth
                )
        shares = [f"{n / args.count:.1%}" for n in (cuts, there, right)]
        for rendering in PLACED:
            shares.append(f"{among[rendering] / args.count:.1%}")
            shares.append(f"{chosen_right[rendering] / args.count:.1%}")
        rows.append([f"{length} {layout}", *shares])
        print(rows[-1], flush=True)
    print(f"\nmodel {served.info.version}; {args.count} numbers a row\n")
    headers = ["numbers", "cuts right", "reading there", "read right"]
    for rendering in PLACED:
        headers += [f"{rendering}: among the candidates", f"{rendering}: read right"]
    print(table(headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
