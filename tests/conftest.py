"""Fixtures: the MNIST test sample, a model trained on it once per session, and a fresh app with
its own temporary model path for each test."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dataset  # noqa: E402
import model  # noqa: E402
from config import Settings  # noqa: E402
from main import create_app  # noqa: E402

SAMPLE_DIR = ROOT / "tests" / "data"


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
def settings(tmp_path: Path, model_file: Path) -> Settings:
    """Settings whose model path holds a copy of the session's trained model."""
    result = make_settings(tmp_path)
    result.model_path.parent.mkdir(parents=True)
    shutil.copy(model_file, result.model_path)
    shutil.copy(model.run_note_path(model_file), model.run_note_path(result.model_path))
    return result


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        assert test_client.app.state.predictor.wait(60)  # type: ignore[attr-defined]
        yield test_client


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()
