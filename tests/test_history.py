"""Predictions kept in a user's history: storing, listing, paging, deleting, and isolation."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_accounts import register, rows

import accounts
import dataset
import db
import history
from config import Settings
from conftest import make_settings, png
from main import create_app
from predictor import Keep


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def predict(client: TestClient, token: str, data: bytes, name: str = "digit.png") -> Any:
    return client.post(
        "/api/predict/", files={"image": (name, data, "image/png")}, headers=auth(token)
    )


@pytest.fixture
def ada(client: TestClient) -> str:
    token: str = register(client, "ada").json()["token"]
    return token


@pytest.fixture
def bob(client: TestClient) -> str:
    token: str = register(client, "bob").json()["token"]
    return token


def test_predict_keeps_the_prediction_and_the_upload(
    client: TestClient, settings: Settings, ada: str, holdout: dataset.Digits
) -> None:
    upload = png(holdout.images[1])  # a 3
    answer = predict(client, ada, upload)
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {
        "id",
        "kind",
        "result",
        "confidence",
        "probabilities",
        "model_version",
        "created_at",
        "image",
    }
    assert (body["id"], body["kind"], body["result"]) == (1, "digit", 3)
    assert body["confidence"] == max(body["probabilities"])
    assert body["image"] == "http://testserver/api/history/1/image/"

    [row] = rows(settings, db.predictions)
    assert (row["user_id"], row["result"], row["image_type"]) == (1, 3, "image/png")
    assert (row["image"], row["image_size"]) == (upload, len(upload))
    assert row["image_sha256"] == hashlib.sha256(upload).hexdigest()


def test_stored_type_comes_from_the_bytes_not_the_client(
    client: TestClient, settings: Settings, ada: str, holdout: dataset.Digits
) -> None:
    upload = png(holdout.images[1])
    client.post(
        "/api/predict/", files={"image": ("x.html", upload, "text/html")}, headers=auth(ada)
    )
    image = client.get("/api/history/1/image/", headers=auth(ada))
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.content == upload


BAD = [
    # (field, bytes, status, detail)
    ("image", b"plain text", 400, "File provided is not an image."),
    ("image", png(np.full((50, 50), 255, np.uint8)), 400, "No digit found in the image."),
    ("image", b"", 400, "The uploaded file is empty."),
    ("file", png(np.zeros((28, 28), np.uint8)), 422, None),
]


@pytest.mark.parametrize(("field", "data", "status", "detail"), BAD)
def test_bad_uploads_keep_nothing(
    client: TestClient,
    settings: Settings,
    ada: str,
    field: str,
    data: bytes,
    status: int,
    detail: str | None,
) -> None:
    answer = client.post(
        "/api/predict/", files={field: ("x.png", data, "image/png")}, headers=auth(ada)
    )
    assert answer.status_code == status
    if detail:
        assert answer.json() == {"detail": detail}
    assert rows(settings, db.predictions) == []


def test_predict_needs_a_token(client: TestClient, holdout: dataset.Digits) -> None:
    answer = client.post(
        "/api/predict/", files={"image": ("x.png", png(holdout.images[1]), "image/png")}
    )
    assert (answer.status_code, answer.json()) == (
        401,
        {"detail": "Authentication credentials were not provided."},
    )


def test_same_size_limit_as_predict_mnist(client: TestClient, ada: str) -> None:
    answer = predict(client, ada, b"\x00" * 6_000_000)
    assert (answer.status_code, answer.json()) == (
        413,
        {"detail": "Upload is 6 MB; the limit is 5 MB. Send a smaller image."},
    )


def test_history_newest_first_with_pages(
    client: TestClient, ada: str, holdout: dataset.Digits
) -> None:
    ids = [predict(client, ada, png(digit)).json()["id"] for digit in holdout.images[:5]]
    everything = client.get("/api/history/", headers=auth(ada)).json()
    assert everything["count"] == 5
    assert [item["id"] for item in everything["results"]] == ids[::-1]
    assert (everything["next"], everything["previous"]) == (None, None)

    first = client.get("/api/history/?limit=2", headers=auth(ada)).json()
    assert [item["id"] for item in first["results"]] == [5, 4]
    assert first["next"] == "http://testserver/api/history/?limit=2&offset=2"
    assert first["previous"] is None
    middle = client.get("/api/history/?limit=2&offset=2", headers=auth(ada)).json()
    assert [item["id"] for item in middle["results"]] == [3, 2]
    assert middle["previous"] == "http://testserver/api/history/?limit=2&offset=0"

    page = client.get("/api/history/?page=3&page_size=2", headers=auth(ada)).json()
    assert [item["id"] for item in page["results"]] == [1]
    assert page["next"] is None
    assert page["previous"] == "http://testserver/api/history/?page=2&page_size=2"
    assert client.get("/api/history/?page=0", headers=auth(ada)).status_code == 422
    assert client.get("/api/history/?limit=1000", headers=auth(ada)).status_code == 422


def test_view_download_and_delete(
    client: TestClient, settings: Settings, ada: str, holdout: dataset.Digits
) -> None:
    upload = png(holdout.images[1])
    created = predict(client, ada, upload).json()
    one = client.get("/api/history/1/", headers=auth(ada))
    assert (one.status_code, one.json()) == (200, created)
    assert client.get("/api/history/1/image/", headers=auth(ada)).content == upload

    deleted = client.delete("/api/history/1/", headers=auth(ada))
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert rows(settings, db.predictions) == []  # the upload went with its record
    gone = {"detail": "No such prediction in your history."}
    for answer in (
        client.get("/api/history/1/", headers=auth(ada)),
        client.get("/api/history/1/image/", headers=auth(ada)),
        client.delete("/api/history/1/", headers=auth(ada)),
    ):
        assert (answer.status_code, answer.json()) == (404, gone)


def test_users_never_see_each_others_records(
    client: TestClient, settings: Settings, ada: str, bob: str, holdout: dataset.Digits
) -> None:
    predict(client, ada, png(holdout.images[1]))  # id 1, Ada's
    predict(client, bob, png(holdout.images[2]))  # id 2, Bob's
    missing = {"detail": "No such prediction in your history."}
    for answer in (
        client.get("/api/history/1/", headers=auth(bob)),
        client.get("/api/history/1/image/", headers=auth(bob)),
        client.delete("/api/history/1/", headers=auth(bob)),
        client.get("/api/history/99/", headers=auth(bob)),  # a missing id looks the same
    ):
        assert (answer.status_code, answer.json()) == (404, missing)
    assert [
        item["id"] for item in client.get("/api/history/", headers=auth(bob)).json()["results"]
    ] == [2]
    assert [
        item["id"] for item in client.get("/api/history/", headers=auth(ada)).json()["results"]
    ] == [1]
    assert sorted((row["id"], row["user_id"]) for row in rows(settings, db.predictions)) == [
        (1, 1),
        (2, 2),
    ]
    assert client.get("/api/profile/", headers=auth(ada)).json()["predictions"] == 1


def test_predict_mnist_records_for_a_logged_in_caller(
    client: TestClient, settings: Settings, ada: str, holdout: dataset.Digits
) -> None:
    upload = png(holdout.images[1])
    anonymous = client.post("/predict/mnist", files={"file": ("d.png", upload, "image/png")})
    assert anonymous.status_code == 200
    assert rows(settings, db.predictions) == []

    mine = client.post(
        "/predict/mnist", files={"file": ("d.png", upload, "image/png")}, headers=auth(ada)
    )
    assert (mine.status_code, mine.json()["prediction"]) == (200, "3")
    [row] = rows(settings, db.predictions)
    assert (row["user_id"], row["result"], row["image"]) == (1, 3, upload)

    forged = client.post(
        "/predict/mnist", files={"file": ("d.png", upload, "image/png")}, headers=auth("forged")
    )
    assert (forged.status_code, forged.json()) == (401, {"detail": "Invalid or expired token."})
    assert len(rows(settings, db.predictions)) == 1


def test_include_processed_is_not_kept(
    client: TestClient, ada: str, holdout: dataset.Digits
) -> None:
    upload = png(holdout.images[1])
    answer = client.post(
        "/api/predict/?include=processed",
        files={"image": ("d.png", upload, "image/png")},
        headers=auth(ada),
    )
    assert answer.status_code == 201
    assert answer.json()["processed"]  # base64 PNG of the 28x28 digit
    assert "processed" not in client.get("/api/history/1/", headers=auth(ada)).json()


def test_one_pass_keeps_each_job_for_its_own_token_or_refuses_it(
    client: TestClient, settings: Settings, ada: str, bob: str, holdout: dataset.Digits
) -> None:
    """The prediction process's part (history.Keeper), here in this process: good tokens keep,
    a bad token is refused even with a bad image, a bad image with a good token keeps nothing."""
    predictor = client.app.state.predictor  # type: ignore[attr-defined]
    keeper = history.Keeper(db.connect(settings.database))
    digit = png(holdout.images[1])
    jobs = [
        Keep(accounts.hash_token(ada), digit),
        Keep(accounts.hash_token("not a token"), digit),
        Keep(accounts.hash_token(bob), b"not an image"),
        Keep(accounts.hash_token("not a token"), b"not an image"),
        Keep(accounts.hash_token(bob), digit),
    ]
    results = predictor._reader.predict([job.upload for job in jobs])
    outcomes = keeper(jobs, results)
    kinds = [
        type(outcome).__name__ if isinstance(outcome, Exception) else outcome[1]["result"]
        for outcome in outcomes
    ]
    assert kinds == [3, "Unauthorized", "InvalidImage", "Unauthorized", 3]
    kept = rows(settings, db.predictions)
    assert [(row["id"], row["result"]) for row in kept] == [
        (outcomes[0][1]["id"], 3),  # type: ignore[index]
        (outcomes[4][1]["id"], 3),  # type: ignore[index]
    ]
    owners = {row["user_id"] for row in kept}
    assert len(owners) == 2


def test_history_is_kept_without_the_prediction_process_too(
    tmp_path: Path, model_file: Path, holdout: dataset.Digits, database_url: str
) -> None:
    settings = make_settings(
        tmp_path, model_path=model_file, prediction_process=False, database_url=database_url
    )
    with TestClient(create_app(settings)) as client:
        token = register(client).json()["token"]
        response = predict(client, token, png(holdout.images[1]))
        assert response.status_code == 201
        assert response.json()["result"] == 3
        assert predict(client, "wrong", png(holdout.images[1])).status_code == 401
        assert [row["result"] for row in rows(settings, db.predictions)] == [3]
