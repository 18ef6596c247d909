"""Shared helpers for the benchmarks (run them from the repository root: python -m bench.NAME)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dataset
import model


def mnist_dir() -> Path:
    """MNIST_DATA_DIR, else the shared folder beside the checkout."""
    return Path(os.environ.get("MNIST_DATA_DIR", ROOT.parent / "shared" / "mnist"))


def trained_model(path: Path, given: Path | None) -> Path:
    """A model file at `path` for the servers a benchmark starts: a copy of `given` (with its
    run note), or one trained now on MNIST_DATA_DIR (`python -m model train`)."""
    if given:
        shutil.copy(given, path)
        shutil.copy(model.run_note_path(given), model.run_note_path(path))
    else:
        env = {**os.environ, "MNIST_DATA_DIR": str(mnist_dir()), "MODEL_PATH": str(path)}
        subprocess.run([sys.executable, "-m", "model", "train"], cwd=ROOT, env=env, check=True)
    return path


def load_mnist() -> dataset.Mnist:
    return dataset.read_folder(mnist_dir())


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table, ready to paste into BENCHMARKS.md."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


class Clients:
    """`clients` threads each running `_client` (until `stopping` is set) while the `with` block
    lasts."""

    def __init__(self, clients: int) -> None:
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _client(self) -> None:
        raise NotImplementedError
