"""One side of bench/cost.py: a checkout's own code and model. It first answers with a digest
of its answers to every upload and the names of its tasks, then times the task named by each
line read on stdin, answering each with one line of JSON (what it measured, in seconds).
Imports nothing of the checkout that runs it: the code measured is the one at the root it is
given.

    python bench/cost_side.py ROOT MODEL INPUTS
"""

from __future__ import annotations

import hashlib
import json
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

STREAM = 1024  # MNIST PNGs per batched measurement: whole batches of 8 and of 256
EVICT_BYTES = 64 * 2**20  # twice the last-level cache (32 MB here): copied between two uploads


def main(root: Path, model_path: Path, inputs: Path) -> None:
    """Load the code at `root` and its model, then answer rounds until stdin closes."""
    sys.path.insert(0, str(root))
    import model
    import predictor

    with inputs.open("rb") as stream:
        given = pickle.load(stream)
    pngs: list[bytes] = given["mnist"]
    real: list[tuple[str, bytes]] = given["real"]
    numbers: dict[str, list[bytes]] = given["numbers"]
    reader = predictor.Reader(model.load(model_path), 50_000_000)

    # allocated once; the filler not zeros, which the kernel maps to one shared page
    filler, evict = bytes(range(256)) * (EVICT_BYTES // 256), bytearray(EVICT_BYTES)

    def each(
        uploads: list[bytes], read: Callable[[bytes], object] | None = None, cold: bool = False
    ) -> list[float]:
        """Seconds for each upload, read one at a time (by `read`; else as one digit); `cold`:
        with the caches first filled with other data, as in a server where the client, the
        event loop and other processes run between two uploads."""
        read = read or (lambda upload: reader.predict([upload]))
        seconds = []
        for upload in uploads:
            if cold:
                evict[:] = filler  # untimed: 128 MB read and written, no cache line left ours
            start = time.perf_counter()
            read(upload)
            seconds.append(time.perf_counter() - start)
        return seconds

    def per_image(batch: int) -> float:
        stream = [pngs[i % len(pngs)] for i in range(STREAM)]
        start = time.perf_counter()
        for first in range(0, STREAM, batch):
            reader.predict(stream[first : first + batch])
        return (time.perf_counter() - start) / STREAM

    # what it answers, bit for bit: a code change meant to be only faster keeps this
    answers = hashlib.sha256()
    for upload in [*pngs, *(data for _, data in real)]:
        (outcome,) = reader.predict([upload])
        answers.update(repr(getattr(outcome, "probabilities", outcome)).encode())
    for upload in (data for images in numbers.values() for data in images):
        number = reader.read_number(upload)
        answers.update(repr(getattr(number, "probabilities", number)).encode())
        answers.update(repr(getattr(number, "boxes", None)).encode())

    def real_round() -> dict[str, float]:
        seconds = each([data for _, data in real])
        kinds = sorted({kind for kind, _ in real})
        return {
            "real upload, median": statistics.median(seconds),
            **{
                f"real upload, {kind}": statistics.median(
                    [s for (k, _), s in zip(real, seconds, strict=True) if k == kind]
                )
                for kind in kinds
            },
        }

    def number_round(images: list[bytes]) -> Callable[[], dict[str, float]]:
        return lambda: {"": statistics.median(each(images, reader.read_number))}

    # each task is timed on its own, so that the sides take turns at every task, not every round;
    # it answers {what: seconds}, "" standing for the task's own name
    tasks: dict[str, Callable[[], dict[str, float]]] = {
        "one MNIST PNG": lambda: {"": statistics.median(each(pngs))},
        "one MNIST PNG, caches cold": lambda: {"": statistics.median(each(pngs[:100], cold=True))},
        "MNIST PNGs in batches of 8, per image": lambda: {"": per_image(8)},
        "MNIST PNGs in a batch of 256, per image": lambda: {"": per_image(256)},
        **({"real uploads": real_round} if real else {}),
        **{f"number, {name}": number_round(images) for name, images in numbers.items()},
    }
    hello = {
        "version": reader.model.info.version,
        "answers": answers.hexdigest()[:12],
        "tasks": list(tasks),
    }
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        task = line.strip()
        print(json.dumps({key or task: value for key, value in tasks[task]().items()}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
