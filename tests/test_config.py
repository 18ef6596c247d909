"""Settings come from the environment, with defaults that work on a laptop."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config import DEFAULT_MNIST_MIRRORS, Settings
from errors import human_size


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MNIST_DATA_DIR",
        "MODEL_PATH",
        "MAX_UPLOAD_BYTES",
        "MNIST_MIRRORS",
        "DATA_DIR",
        "DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.mnist_data_dir is None
    assert settings.model_path == Path("models/mnist-sgd.joblib")
    assert settings.max_upload_bytes == 5_000_000
    assert settings.mnist_mirrors == DEFAULT_MNIST_MIRRORS
    assert settings.download_dir == Path("data/mnist")
    assert settings.database == "sqlite:///data/digits.db"


def test_the_database_follows_the_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", "/var/lib/digits")
    assert Settings().database == "sqlite:////var/lib/digits/digits.db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.internal/digits")
    assert Settings().database == "postgresql://db.internal/digits"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_DATA_DIR", "/srv/mnist")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    monkeypatch.setenv("MNIST_MIRRORS", "http://a.example/mnist, http://b.example/m/")
    settings = Settings()
    assert settings.mnist_data_dir == Path("/srv/mnist")
    assert settings.max_upload_bytes == 1000
    assert settings.mnist_mirrors == ("http://a.example/mnist/", "http://b.example/m/")


def test_empty_data_dir_means_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_DATA_DIR", "")  # what an unset Docker build argument passes
    assert Settings().mnist_data_dir is None


def test_nonsense_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "-1")
    with pytest.raises(ValidationError, match="max_upload_bytes"):
        Settings()


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (5_000_000, "5 MB"),
        (9_123_456, "9.1 MB"),
        (1500, "1.5 kB"),
        (1000, "1 kB"),
        (12, "12 bytes"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text
