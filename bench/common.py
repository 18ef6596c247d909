"""Shared helpers for the benchmarks (run them from the repository root: python -m bench.NAME)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dataset


def mnist_dir() -> Path:
    """MNIST_DATA_DIR, else the shared folder beside the checkout."""
    return Path(os.environ.get("MNIST_DATA_DIR", ROOT.parent / "shared" / "mnist"))


def load_mnist() -> dataset.Mnist:
    return dataset.read_folder(mnist_dir())


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table, ready to paste into BENCHMARKS.md."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
