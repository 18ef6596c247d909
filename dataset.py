"""MNIST: read the IDX files from a folder, or download and verify them, and split off a hold-out.

The four standard files are `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
`t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each gzip-compressed (`.gz`) or raw.
A folder holding only the training pair is valid: the hold-out then comes from it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import struct
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from errors import DatasetError

log = logging.getLogger(__name__)

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
SIDE = 28
HOLDOUT_FRACTION = 0.2
SPLIT_SEED = 20_261_124


@dataclass(frozen=True)
class IdxFile:
    stem: str
    magic: int
    md5: str  # of the published .gz file


TRAIN_IMAGES = IdxFile("train-images-idx3-ubyte", IMAGES_MAGIC, "f68b3c2dcbeaaa9fbdd348bbdeb94873")
TRAIN_LABELS = IdxFile("train-labels-idx1-ubyte", LABELS_MAGIC, "d53e105ee54ea40749a09fcbcd1e9432")
TEST_IMAGES = IdxFile("t10k-images-idx3-ubyte", IMAGES_MAGIC, "9fb629c4189551a2d022fa330f9573f3")
TEST_LABELS = IdxFile("t10k-labels-idx1-ubyte", LABELS_MAGIC, "ec29112dd5afa0611ce80d1b7f02629c")
ALL_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


@dataclass(frozen=True)
class Digits:
    """Images as uint8 (n, 28, 28), white ink on black as MNIST stores them, and labels (n,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray | slice) -> Digits:
        return Digits(self.images[index], self.labels[index])


@dataclass(frozen=True)
class Mnist:
    train: Digits
    test: Digits | None  # the official t10k pair, when the folder has it
    source: str  # where it came from, for logs and model metadata


def read_idx(path: Path, expected: IdxFile) -> np.ndarray:
    """Read one IDX file (gzip or raw, told apart by content), checking magic number and shape."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read it ({exc})") from exc
    if len(raw) < 8:
        raise DatasetError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected.magic:
        raise DatasetError(
            f"{path}: magic number is 0x{magic:08X}, expected 0x{expected.magic:08X} "
            f"for {expected.stem}"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    if ndim == 3 and shape[1:] != (SIDE, SIDE):
        raise DatasetError(f"{path}: images are {shape[1]}x{shape[2]}, expected 28x28")
    expected_bytes = header_size + int(np.prod(shape))
    if len(raw) != expected_bytes:
        raise DatasetError(
            f"{path}: holds {len(raw)} bytes but its header {shape} needs {expected_bytes}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _find(folder: Path, idx: IdxFile) -> Path | None:
    for name in (idx.stem + ".gz", idx.stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_pair(folder: Path, images_file: IdxFile, labels_file: IdxFile) -> Digits | None:
    images_path, labels_path = _find(folder, images_file), _find(folder, labels_file)
    if images_path is None and labels_path is None:
        return None
    if images_path is None or labels_path is None:
        missing = images_file if images_path is None else labels_file
        raise DatasetError(
            f"{folder}: {missing.stem}(.gz) is missing; images and labels go in pairs"
        )
    images, labels = read_idx(images_path, images_file), read_idx(labels_path, labels_file)
    if len(images) != len(labels):
        raise DatasetError(
            f"{folder}: {images_path.name} has {len(images)} images but "
            f"{labels_path.name} has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{labels_path}: holds label {labels.max()}; labels are digits 0-9")
    return Digits(images, labels)


def read_folder(folder: Path) -> Mnist:
    """Read MNIST from `folder`: the training pair is required, the t10k pair optional."""
    if not folder.is_dir():
        raise DatasetError(f"MNIST_DATA_DIR={folder} is not a folder")
    train = _read_pair(folder, TRAIN_IMAGES, TRAIN_LABELS)
    if train is None:
        raise DatasetError(
            f"MNIST_DATA_DIR={folder} holds no {TRAIN_IMAGES.stem}(.gz) and "
            f"{TRAIN_LABELS.stem}(.gz)"
        )
    test = _read_pair(folder, TEST_IMAGES, TEST_LABELS)
    return Mnist(train=train, test=test, source=str(folder))


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # the published checksums are MD5
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, target: Path, md5: str, timeout: float) -> None:
    """Download `url` to `target` atomically, keeping it only if its MD5 matches."""
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) mirrors from settings)
                for block in iter(lambda: response.read(1 << 20), b""):
                    tmp.write(block)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    actual = _md5(tmp_path)
    if actual != md5:
        tmp_path.unlink(missing_ok=True)
        raise DatasetError(f"checksum mismatch (MD5 {actual}, expected {md5})")
    os.replace(tmp_path, target)


def download(
    folder: Path, mirrors: Iterable[str], timeout: float, files: Iterable[IdxFile] = ALL_FILES
) -> Path:
    """Make sure `folder` holds the verified MNIST .gz files (all four by default); return it.

    Files already there with the right checksum are kept. Each missing file is tried at every
    mirror in turn; a failed or corrupted download falls through to the next mirror.
    """
    mirrors = tuple(mirrors)
    folder.mkdir(parents=True, exist_ok=True)
    for idx in files:
        target = folder / (idx.stem + ".gz")
        if target.is_file() and _md5(target) == idx.md5:
            continue
        failures = []
        for base in mirrors:
            url = base + target.name
            try:
                _fetch(url, target, idx.md5, timeout)
            except (OSError, urllib.error.URLError, DatasetError, ValueError) as exc:
                log.warning("MNIST download of %s failed: %s", url, exc)
                failures.append(f"{url}: {exc}")
                continue
            log.info("downloaded %s", url)
            break
        else:
            raise DatasetError(
                f"Could not download {target.name} from any mirror "
                f"({'; '.join(failures) or 'no mirrors configured'}). To run offline, set "
                "MNIST_DATA_DIR to a folder holding the MNIST IDX files."
            )
    return folder


def load(
    data_dir: Path | None, download_dir: Path, mirrors: Iterable[str], timeout: float
) -> Mnist:
    """MNIST from `data_dir` when given, else downloaded (once) into `download_dir`."""
    if data_dir is not None:
        return read_folder(data_dir)
    return read_folder(download(download_dir, mirrors, timeout))


def split(mnist: Mnist) -> tuple[Digits, Digits]:
    """(training, held-out): the official test set when present, else a fixed stratified 20%."""
    if mnist.test is not None:
        return mnist.train, mnist.test
    rng = np.random.default_rng(SPLIT_SEED)
    holdout_parts = []
    for digit in range(10):
        members = np.flatnonzero(mnist.train.labels == digit)
        n_holdout = round(len(members) * HOLDOUT_FRACTION)
        holdout_parts.append(rng.choice(members, size=n_holdout, replace=False))
    holdout = np.sort(np.concatenate(holdout_parts))
    training = np.setdiff1d(np.arange(len(mnist.train)), holdout)
    return mnist.train.take(training), mnist.train.take(holdout)
