"""Reading, validating, downloading and splitting MNIST."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import dataset
from conftest import SAMPLE_DIR
from errors import DatasetError


def test_reads_the_sample_folder(mnist: dataset.Mnist) -> None:
    assert mnist.train.images.shape == (1000, 28, 28)
    assert mnist.train.images.dtype == np.uint8
    assert np.bincount(mnist.train.labels).tolist() == [
        106,
        96,
        89,
        111,
        102,
        96,
        109,
        102,
        102,
        87,
    ]
    assert mnist.test is None
    assert mnist.source == str(SAMPLE_DIR)


def test_raw_and_gzip_files_read_the_same(tmp_path: Path, mnist: dataset.Mnist) -> None:
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((SAMPLE_DIR / f"{name}.gz").read_bytes()))
    raw = dataset.read_folder(tmp_path)
    assert np.array_equal(raw.train.images, mnist.train.images)
    assert np.array_equal(raw.train.labels, mnist.train.labels)


def write_idx(path: Path, magic: int, shape: tuple[int, ...], payload: bytes) -> None:
    path.write_bytes(struct.pack(f">I{len(shape)}I", magic, *shape) + payload)


def test_test_pair_becomes_the_holdout(tmp_path: Path, mnist: dataset.Mnist) -> None:
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", 0x803, (3, 28, 28), bytes(3 * 784))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", 0x801, (3,), bytes([7, 1, 0]))
    training, holdout = dataset.split(dataset.read_folder(tmp_path))
    assert len(training) == 1000
    assert holdout.labels.tolist() == [7, 1, 0]


def test_split_is_stratified_disjoint_and_fixed(mnist: dataset.Mnist) -> None:
    training, holdout = dataset.split(mnist)
    counts = np.bincount(mnist.train.labels)
    per_class = [round(c * 0.2) for c in counts]
    assert np.bincount(holdout.labels).tolist() == per_class
    assert (len(training), len(holdout)) == (1000 - sum(per_class), sum(per_class)) == (802, 198)
    again = dataset.split(mnist)[1]
    assert np.array_equal(again.images, holdout.images)
    train_rows = {row.tobytes() for row in training.images}
    assert not any(row.tobytes() in train_rows for row in holdout.images)


BAD_FILES = [
    # (images file content, labels file content, expected words in the error)
    (struct.pack(">IIII", 0x801, 1, 28, 28) + bytes(784), None, "magic number is 0x00000801"),
    (struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(784), None, "needs 1584"),
    (struct.pack(">IIII", 0x803, 1, 32, 32) + bytes(1024), None, "images are 32x32"),
    (b"\x00\x00", None, "too short"),
    (b"\x1f\x8b not really gzip", None, "cannot read it"),
    (None, struct.pack(">II", 0x801, 2) + bytes(2), "has 1 images but"),
    (None, struct.pack(">II", 0x801, 1) + bytes([12]), "holds label 12"),
]


@pytest.mark.parametrize(("images", "labels", "message"), BAD_FILES)
def test_bad_files_are_refused_naming_the_file(
    tmp_path: Path, images: bytes | None, labels: bytes | None, message: str
) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        images or struct.pack(">IIII", 0x803, 1, 28, 28) + bytes(784)
    )
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        labels or struct.pack(">II", 0x801, 1) + b"\x03"
    )
    with pytest.raises(DatasetError, match=message) as error:
        dataset.read_folder(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_missing_folder_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is not a folder"):
        dataset.read_folder(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="holds no train-images-idx3-ubyte"):
        dataset.read_folder(tmp_path)
    shutil.copy(SAMPLE_DIR / "train-images-idx3-ubyte.gz", tmp_path)
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\(\.gz\) is missing"):
        dataset.read_folder(tmp_path)


# --- downloading, against a local HTTP server -------------------------------------------------


class Mirror:
    """A static file server on 127.0.0.1 that counts the requests it answers."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture
def mirrors(tmp_path: Path) -> Iterator[tuple[Mirror, Mirror, list[dataset.IdxFile]]]:
    """Two mirrors: the first serves a corrupted images file, the second the good pair."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(SAMPLE_DIR / name, good / name)
    corrupted = bytearray((good / "train-images-idx3-ubyte.gz").read_bytes())
    corrupted[5000] ^= 0xFF
    (bad / "train-images-idx3-ubyte.gz").write_bytes(bytes(corrupted))
    files = [
        dataset.IdxFile(
            "train-images-idx3-ubyte",
            dataset.IMAGES_MAGIC,
            md5(good / "train-images-idx3-ubyte.gz"),
        ),
        dataset.IdxFile(
            "train-labels-idx1-ubyte",
            dataset.LABELS_MAGIC,
            md5(good / "train-labels-idx1-ubyte.gz"),
        ),
    ]
    first, second = Mirror(bad), Mirror(good)
    yield first, second, files
    first.close()
    second.close()


def test_download_rejects_a_corrupted_file_and_falls_through(
    tmp_path: Path, mirrors: tuple[Mirror, Mirror, list[dataset.IdxFile]], mnist: dataset.Mnist
) -> None:
    bad, good, files = mirrors
    target = tmp_path / "cache"
    dataset.download(target, [bad.url, good.url], timeout=5, files=files)
    # the corrupted images file was fetched and refused; the labels file was missing there (404)
    assert bad.requests == ["/train-images-idx3-ubyte.gz", "/train-labels-idx1-ubyte.gz"]
    assert good.requests == ["/train-images-idx3-ubyte.gz", "/train-labels-idx1-ubyte.gz"]
    assert sorted(p.name for p in target.iterdir()) == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert np.array_equal(dataset.read_folder(target).train.images, mnist.train.images)

    # verified files already cached are not fetched again
    dataset.download(target, [bad.url, good.url], timeout=5, files=files)
    assert len(bad.requests) + len(good.requests) == 4


def test_download_fails_clearly_when_no_mirror_has_it(
    tmp_path: Path, mirrors: tuple[Mirror, Mirror, list[dataset.IdxFile]]
) -> None:
    bad, _, files = mirrors
    unreachable = "http://127.0.0.1:9/"  # discard port: connection refused at once
    with pytest.raises(DatasetError) as error:
        dataset.download(tmp_path / "cache", [unreachable, bad.url], timeout=5, files=files)
    message = str(error.value)
    assert message.startswith("Could not download train-images-idx3-ubyte.gz from any mirror")
    assert "checksum mismatch" in message
    assert "set MNIST_DATA_DIR" in message
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written left behind


def test_load_downloads_when_no_data_dir_is_given(
    tmp_path: Path,
    mirrors: tuple[Mirror, Mirror, list[dataset.IdxFile]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, good, files = mirrors
    monkeypatch.setattr(dataset, "ALL_FILES", tuple(files))
    monkeypatch.setattr(dataset.download, "__defaults__", (tuple(files),))
    loaded = dataset.load(None, tmp_path / "cache", [good.url], timeout=5)
    assert len(loaded.train) == 1000
    assert loaded.source == str(tmp_path / "cache")
