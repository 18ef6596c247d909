"""Fixtures: the MNIST test sample, a model trained on it once per session, and a fresh app with
its own temporary model path for each test, once on a SQLite file and once on a database of a
real PostgreSQL server started for the session (skipped, with the reason, where PostgreSQL is
not installed; DIGITS_REQUIRE_POSTGRES=1 makes that a failure, as CI does)."""

from __future__ import annotations

import io
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dataset  # noqa: E402
import model  # noqa: E402
import preprocessing  # noqa: E402
import segmentation  # noqa: E402
import styles  # noqa: E402
from bench.postgres import Cluster, Unavailable  # noqa: E402
from config import Settings  # noqa: E402
from main import create_app  # noqa: E402

SAMPLE_DIR = ROOT / "tests" / "data"
# How long a test waits for the model to be ready (loaded, or trained from the sample: about 20 s
# alone, minutes when benchmarks share the 2 cores); wait() returns as soon as it is.
READY_WAIT = 600


@pytest.fixture(scope="session")
def mnist() -> dataset.Mnist:
    return dataset.read_folder(SAMPLE_DIR)


@pytest.fixture(scope="session")
def holdout(mnist: dataset.Mnist) -> dataset.Digits:
    return dataset.split(mnist)[1]


@pytest.fixture(scope="session")
def trained(mnist: dataset.Mnist) -> model.DigitModel:
    """The service's pipeline trained on the 800 training digits of the sample."""
    return model.train(mnist, progress=lambda message: None)


@pytest.fixture(scope="session")
def model_file(trained: model.DigitModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.joblib"
    model.save(trained, path)
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL server for the session: initdb in a temporary folder, on 127.0.0.1."""
    try:
        with Cluster.start() as cluster:
            yield cluster
    except Unavailable as exc:
        if os.environ.get("DIGITS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"DIGITS_REQUIRE_POSTGRES=1, but {exc}")
        pytest.skip(f"the PostgreSQL half of the suite: {exc}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database: a SQLite file, or a database of the session's PostgreSQL server.
    A test that needs SQLite itself says so: @pytest.mark.parametrize("database_url",
    ["sqlite"], indirect=True)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'digits.db'}"
        return
    cluster: Cluster = request.getfixturevalue("postgres")
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = cluster.create_database(name)
    yield url
    cluster.drop_database(name)


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "mnist_data_dir": SAMPLE_DIR,
        "data_dir": tmp_path / "data",
        "model_path": tmp_path / "models" / "model.joblib",
        "database_url": f"sqlite:///{tmp_path / 'digits.db'}",
        "mnist_mirrors": ("http://127.0.0.1:9/",),  # never the network, even by mistake
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, model_file: Path, database_url: str) -> Settings:
    """Settings whose model path holds a copy of the session's trained model."""
    result = make_settings(tmp_path, database_url=database_url)
    result.model_path.parent.mkdir(parents=True)
    shutil.copy(model_file, result.model_path)
    shutil.copy(model.run_note_path(model_file), model.run_note_path(result.model_path))
    return result


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        assert test_client.app.state.predictor.wait(READY_WAIT)  # type: ignore[attr-defined]
        yield test_client


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    return encoded(Image.fromarray(pixels, mode))


def encoded(image: Image.Image) -> bytes:
    """An image's PNG file."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def read_number(trained: model.DigitModel, data: bytes, max_digits: int = 20) -> str:
    """The number an upload is read as, by what POST /predict/number runs."""
    image = preprocessing.decode(data, 50_000_000, segmentation.SIDE)
    reading = segmentation.read(image, trained.read_pieces, max_digits)
    digits = reading.probabilities.argmax(axis=1).tolist()
    return segmentation.written(digits, reading.points, reading.dashes)


def thin_pen(digit: np.ndarray, scale: int, widened: bool = True) -> np.ndarray:
    """The digit at `scale` times its size as a line a pixel or two wide (uint8, ink 1): the
    middle of its strokes (the ridge of the distance to their edges), widened by a pixel or
    (not `widened`) as it is."""
    stroke = styles._pen(digit, scale) > 0.5
    depth = ndimage.distance_transform_edt(stroke)
    ridge = stroke & (depth >= ndimage.maximum_filter(depth, size=3) - 0.75)
    return (ndimage.binary_dilation(ridge) if widened else ridge).astype(np.uint8)
