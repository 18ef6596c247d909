"""What an upload costs in-process: this checkout beside another, measured in turns.

Each side is a fresh interpreter on its own code, with BLAS on one thread as in the prediction
processes, timing `predictor.Reader.predict` (decode, preprocess, classify) on:

- one MNIST-format PNG at a time (held-out digits, the same bytes for both sides), with the
  caches warm (one upload after another) and cold (64 MB of other data written between two
  uploads, as the client, the event loop and the other processes of a server under load do);
- MNIST-format PNGs in batches of 8 and of 256 (per image);
- each real upload of ../shared/realdigits-dev, one at a time (median, overall and per kind);
- 4-digit numbers of separate held-out digits as a canvas export and as a paper photo, and of
  touching ones as a canvas export, read by `predictor.Reader.read_number` (the first 30 of
  bench.numbers' rows "4 apart, canvas", "4 apart, paper photo" and "4 touching, canvas": the
  same images; touching digits are split, so each part tried is framed and classified).

The sides take turns at each measurement of each round, who goes first alternating, and both
run on one core (`--cpu`), so both meet the same machine: this shared machine's speed varies
from minute to minute (seen: 14 ms and 22 ms for the same number, a minute apart), and its two
cores need not be equally fast. The table gives each side's median over the rounds and the
median of the rounds' ratios (each of two timings taken one after the other). Both sides first
read every upload once and say whether their answers (every probability) are the same bit for
bit: a change meant only to be faster keeps them. Speed on this shared machine varies from day
to day by a factor of three: the ratio is the figure to compare, the milliseconds are today's.

    python -m bench.cost [--baseline REF] [--rounds 7] [--model PATH] [--baseline-model PATH]
                         [--cpu N]

Without --model, this checkout's model is trained first (`python -m model train`); without
--baseline-model the baseline trains its own, with its own code. Without --baseline only this
checkout is measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import dataset
import styles
from bench import numbers
from bench.common import ROOT, load_mnist, mnist_dir, table

MNIST_IMAGES = 300
NUMBERS = 30  # of each rendering
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
SIDE_SCRIPT = Path(__file__).with_name("cost_side.py")


class Side:
    """A worker process and the rounds it has measured."""

    def __init__(
        self, name: str, root: Path, model_path: Path, inputs: Path, cpu: int | None
    ) -> None:
        self.name = name
        # -P: the script's folder (bench/, with its numbers.py) is not put on the path
        command = [sys.executable, "-P", str(SIDE_SCRIPT), str(root), str(model_path), str(inputs)]
        self.process = subprocess.Popen(
            command,
            cwd=root,
            env={**os.environ, **ONE_THREAD},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if cpu is not None:  # both sides on one core: they take turns on the same hardware
            os.sched_setaffinity(self.process.pid, {cpu})
        hello = self._answer()
        self.version, self.answers = hello["version"], hello["answers"]
        self.tasks: list[str] = hello["tasks"]  # type: ignore[assignment]
        self.timings: dict[str, list[float]] = {}

    def _answer(self) -> dict[str, object]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the side measuring {self.name} stopped")
        answer: dict[str, object] = json.loads(line)
        return answer

    def run(self, task: str) -> None:
        """Time one task: what it measured is added to the timings."""
        assert self.process.stdin is not None
        self.process.stdin.write(task + "\n")
        self.process.stdin.flush()
        for key, value in self._answer().items():
            self.timings.setdefault(key, []).append(float(value))  # type: ignore[arg-type]

    def median(self, key: str) -> float:
        return statistics.median(self.timings[key])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def checkout(ref: str, into: Path) -> Path:
    """The tree of `ref`, unpacked (no worktree bookkeeping left behind)."""
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def train(root: Path, path: Path) -> Path:
    """A model trained by the code at `root`, as its first boot would."""
    env = {**os.environ, "MNIST_DATA_DIR": str(mnist_dir()), "MODEL_PATH": str(path)}
    subprocess.run([sys.executable, "-m", "model", "train"], cwd=root, env=env, check=True)
    return path


def real_uploads(folder: Path) -> list[tuple[str, bytes]]:
    if not (folder / "labels.csv").is_file():
        print(f"no real uploads at {folder}: measuring MNIST-format uploads only", flush=True)
        return []
    with (folder / "labels.csv").open() as labels:
        return [
            (row["kind"], (folder / row["file"]).read_bytes()) for row in csv.DictReader(labels)
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="a git ref to measure beside this checkout")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--model", type=Path, help="this checkout's model file")
    parser.add_argument("--baseline-model", type=Path, help="the baseline's model file")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "realdigits-dev")
    parser.add_argument(
        "--cpu",
        type=int,
        default=max(os.sched_getaffinity(0)),
        help="the core both sides run on (default: the last this process may use)",
    )
    args = parser.parse_args()

    _, holdout = dataset.split(load_mnist())
    pngs = [styles.mnist_png(image, None) for image in holdout.images[:MNIST_IMAGES]]
    with tempfile.TemporaryDirectory() as tmp:
        temp = Path(tmp)
        inputs = temp / "inputs.pickle"
        four = {
            f"4-digit {name}": numbers.cell(holdout, 4, layout, rendering, NUMBERS)[1]
            for name, layout, rendering in (
                ("canvas", "apart", "canvas"),
                ("paper photo", "apart", "paper photo"),
                ("touching, canvas", "touching", "canvas"),
            )
        }
        inputs.write_bytes(
            pickle.dumps({"mnist": pngs, "real": real_uploads(args.data), "numbers": four})
        )
        this = args.model or train(ROOT, temp / "this.joblib")
        sides = [Side("this checkout", ROOT, this, inputs, args.cpu)]
        if args.baseline:
            root = checkout(args.baseline, Path(tempfile.mkdtemp(dir=temp)))
            given = args.baseline_model
            trained = given.resolve() if given else train(root, temp / "baseline.joblib")
            sides.insert(0, Side(args.baseline, root, trained, inputs, args.cpu))
        try:
            for number in range(args.rounds):
                for turn, task in enumerate(sides[0].tasks):  # each task in turns, who first
                    for side in sides if (number + turn) % 2 == 0 else sides[::-1]:  # alternating
                        side.run(task)
                print(f"round {number + 1} of {args.rounds}", flush=True)
        finally:
            for side in sides:
                side.close()

    keys = list(sides[0].timings)
    header = ["median ms", *(f"{side.name} ({side.version})" for side in sides)]
    rows: list[list[object]] = []
    for key in keys:
        values = [side.median(key) for side in sides]
        rows.append([key, *(f"{value * 1000:.3f}" for value in values)])
        if len(sides) == 2:  # each round's two timings were taken one after the other
            paired = [b / a for a, b in zip(*(side.timings[key] for side in sides), strict=True)]
            rows[-1].append(f"{statistics.median(paired):.2f}x")
    if len(sides) == 2:
        header.append("ratio (median of the rounds')")
    print(f"\n{args.rounds} rounds, BLAS on one thread, on core {args.cpu}")
    if len(sides) == 2:
        same = sides[0].answers == sides[1].answers
        print("answers: " + ("the same, bit for bit" if same else "DIFFERENT between the sides"))
    print()
    print(table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
