"""Storage that cannot be written: full, read-only, or not there. Each is told apart from a
busy database, says what is wrong, and leaves predictions without a token working."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import dataset
import db
import errors
from conftest import make_settings, png
from main import create_app


@pytest.mark.parametrize(
    ("message", "status", "kind"),
    [
        ("(sqlite3.OperationalError) database or disk is full", 507, errors.StorageFull),
        ("(sqlite3.OperationalError) attempt to write a readonly database", 503,
         errors.StorageReadOnly),
        ("(sqlite3.OperationalError) unable to open database file", 503, errors.StorageReadOnly),
        ("(sqlite3.OperationalError) database is locked", 503, errors.DatabaseUnavailable),
    ],
)  # fmt: skip
def test_database_errors_are_told_apart(message: str, status: int, kind: type) -> None:
    error = errors.database_error(message)
    assert (type(error), error.status_code) == (kind, status)


def test_an_unwritable_data_folder_leaves_anonymous_predictions_working(
    tmp_path: Path, model_file: Path, holdout: dataset.Digits, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    settings = make_settings(
        tmp_path, model_path=model_file, database_url=f"sqlite:///{blocker / 'digits.db'}"
    )
    with caplog.at_level(logging.ERROR), TestClient(create_app(settings)) as client:
        assert client.app.state.predictor.wait(30)  # type: ignore[attr-defined]
        answer = client.post("/predict/mnist", files={"file": png(holdout.images[1])})
        assert (answer.status_code, answer.json()["prediction"]) == (200, "3")
        register = client.post(
            "/api/register/",
            json={"username": "ada", "email": "a@example.com", "password": "correct horse"},
        )
        assert (register.status_code, register.json()["detail"]) == (
            503,
            errors.StorageReadOnly().detail,
        )
        assert str(blocker) not in register.text  # the server's paths stay on the server
    (line,) = [
        r.getMessage() for r in caplog.records if "cannot be reached or written" in r.getMessage()
    ]
    assert str(blocker / "digits.db") in line and "DATA_DIR" in line


def test_an_unwritable_model_folder_trains_in_memory_and_serves(
    tmp_path: Path, holdout: dataset.Digits, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the model folder should be")
    settings = make_settings(tmp_path, model_path=blocker / "model.joblib", train_limit=300)
    with caplog.at_level(logging.ERROR), TestClient(create_app(settings)) as client:
        assert client.app.state.predictor.wait(120)  # type: ignore[attr-defined]
        assert client.get("/ready").status_code == 200
        answer = client.post("/predict/mnist", files={"file": png(holdout.images[1])})
        assert answer.status_code == 200
    assert any("the model cannot be cached" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a server minds its own disk
def test_ready_says_so_when_the_storage_is_full(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/ready").status_code == 200
    monkeypatch.setattr(db, "MIN_FREE_BYTES", 1 << 62)  # more than any disk has free
    answer = client.get("/ready")
    assert (answer.status_code, answer.json()["detail"]) == (503, errors.StorageFull().detail)


def all_subclasses(kind: type) -> list[type]:
    direct: list[type] = kind.__subclasses__()
    return [kind] + [sub for child in direct for sub in all_subclasses(child)]


@pytest.mark.parametrize("kind", all_subclasses(errors.ServiceError), ids=lambda k: k.__name__)
def test_every_service_error_survives_the_trip_back_from_the_prediction_process(
    kind: type,
) -> None:
    """Outcomes travel pickled: an error that cannot be rebuilt from its pickle broke the
    server's reading of every answer after it (StorageFull once did)."""
    import inspect
    import pickle

    arguments = [p for p in inspect.signature(kind).parameters.values() if p.default is p.empty]
    error = kind(*["what went wrong", 30][: len(arguments)])
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.detail, again.status_code) == (kind, error.detail, error.status_code)
