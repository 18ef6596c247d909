"""The HTTP API, through real requests to an app built by the factory."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from filelock import FileLock
from PIL import Image
from test_preprocessing import GOOD_PNG, bomb

import dataset
import styles
from config import Settings
from conftest import READY_WAIT, make_settings, png
from errors import DatasetError
from main import create_app


def post_file(client: TestClient, data: bytes, name: str = "digit.png", field: str = "file") -> Any:
    return client.post("/predict/mnist", files={field: (name, data, "image/png")})


def test_predicts_real_digits(client: TestClient, holdout: dataset.Digits) -> None:
    version = client.get("/model").json()["version"]
    answers = [post_file(client, png(digit)) for digit in holdout.images[:20]]
    assert [answer.status_code for answer in answers] == [200] * 20
    bodies = [answer.json() for answer in answers]
    for body in bodies:
        assert set(body) == {"prediction", "confidence", "probabilities", "model_version"}
        assert body["model_version"] == version
        assert len(body["probabilities"]) == 10
        assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-6)
        assert body["confidence"] == max(body["probabilities"])
        assert body["prediction"] == str(int(np.argmax(body["probabilities"])))
    predictions = [int(body["prediction"]) for body in bodies]
    assert predictions == [5, 3, 6, 3, 5, 5, 5, 7, 1, 2, 6, 2, 3, 4, 1, 6, 4, 9, 7, 3]
    assert holdout.labels[:20].tolist() == [
        5,
        3,
        6,
        3,
        5,
        5,
        5,
        7,
        1,
        2,
        6,
        2,
        3,
        4,
        1,
        8,
        4,
        9,
        7,
        3,
    ]


def test_content_type_is_not_trusted(client: TestClient, holdout: dataset.Digits) -> None:
    """The image is decided by decoding, not by what the client declares."""
    answer = client.post(
        "/predict/mnist", files={"file": ("digit.txt", png(holdout.images[1]), "text/plain")}
    )
    assert answer.status_code == 200
    assert answer.json()["prediction"] == "3"
    lying = client.post(
        "/predict/mnist", files={"file": ("x.png", b"GIF89a nonsense", "image/png")}
    )
    assert (lying.status_code, lying.json()) == (400, {"detail": "File provided is not an image."})


def test_real_upload_styles_over_http(client: TestClient, holdout: dataset.Digits) -> None:
    rng = np.random.default_rng(3)
    digit = holdout.images[1]  # a 3
    for name, style in styles.STYLES.items():
        answer = post_file(client, style(digit, rng), name=f"{name}.bin")
        assert (answer.status_code, answer.json()["prediction"]) == (200, "3"), name


BAD_UPLOADS = [
    # (field name, bytes, expected status, expected detail)
    ("file", b"hello, I am text", 400, "File provided is not an image."),
    ("file", b"", 400, "The uploaded file is empty."),
    ("file", GOOD_PNG[: len(GOOD_PNG) // 2], 400, "The image is truncated or corrupt"),
    ("file", png(np.full((64, 64), 255, np.uint8)), 400, "No digit found in the image."),
    (
        "file",
        bomb(),
        413,
        "Image is 20000x20000 pixels (400.0 megapixels); the limit is 50 megapixels.",
    ),
    ("image", GOOD_PNG, 422, None),
]


@pytest.mark.parametrize(("field", "data", "status", "detail"), BAD_UPLOADS)
def test_bad_uploads(
    client: TestClient, field: str, data: bytes, status: int, detail: str | None
) -> None:
    answer = post_file(client, data, field=field)
    assert answer.status_code == status
    if detail is None:  # FastAPI's validation error names the missing field
        assert answer.json()["detail"][0]["loc"] == ["body", "file"]
        assert answer.json()["detail"][0]["msg"] == "Field required"
    else:
        assert answer.json()["detail"].startswith(detail)


def test_no_body_at_all(client: TestClient) -> None:
    answer = client.post("/predict/mnist")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "file"]


def test_upload_over_the_limit_is_refused_by_its_declared_length(client: TestClient) -> None:
    answer = post_file(client, b"\x00" * 6_000_000)
    assert answer.status_code == 413
    assert answer.json() == {"detail": "Upload is 6 MB; the limit is 5 MB. Send a smaller image."}


def test_streamed_upload_over_the_limit_is_cut_off(client: TestClient) -> None:
    """A chunked body (no Content-Length) is counted as it arrives and refused once past the
    limit: the app stops reading, so the rest is never buffered. Driven at the ASGI level,
    since the test client would buffer the body and declare its length."""
    header = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    chunks = [header] + [b"\x00" * 100_000] * 100  # 10 MB if all were read
    consumed = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        consumed += 1
        return {
            "type": "http.request",
            "body": chunks[consumed - 1],
            "more_body": consumed < len(chunks),
        }

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict/mnist", "raw_path": b"/predict/mnist",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("t", 80),
        "headers": [(b"content-type", b"multipart/form-data; boundary=b")],
    }  # fmt: skip
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {
        "detail": "Upload is 5.1 MB; the limit is 5 MB. Send a smaller image."
    }
    assert consumed == 52  # the header chunk and 51 of the 100 data chunks


def test_file_just_over_the_limit(tmp_path: Path, model_file: Path) -> None:
    """A file over MAX_UPLOAD_BYTES but inside the multipart allowance is caught after parsing."""
    settings = make_settings(tmp_path, max_upload_bytes=1000, model_path=model_file)
    with TestClient(create_app(settings)) as client:
        answer = post_file(client, b"\x00" * 1500)
    assert answer.status_code == 413
    assert answer.json() == {"detail": "Upload is over 1 kB, the limit. Send a smaller image."}


def test_bad_content_length(client: TestClient) -> None:
    answer = client.post("/predict/mnist", headers={"content-length": "-5"}, content=b"")
    assert (answer.status_code, answer.json()) == (
        400,
        {"detail": "Invalid Content-Length header."},
    )


def test_operations_endpoints(client: TestClient, settings: Settings) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/model").json()
    assert set(info) == {
        "version", "trained_at", "training_digits", "holdout_digits", "holdout_accuracy",
        "sklearn_version", "data_source", "training_seconds",
    }  # fmt: skip
    assert (info["training_digits"], info["holdout_digits"]) == (802, 198)
    ready = client.get("/ready")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "model_version": info["version"]},
    )


def test_answers_health_while_training(tmp_path: Path, holdout: dataset.Digits) -> None:
    """With no cache the app trains in the background: /health answers at once, /ready and
    predictions are 503 until the model is there. Holding the model lock keeps it training."""
    settings = make_settings(tmp_path)
    settings.model_path.parent.mkdir(parents=True)
    lock = FileLock(str(settings.model_path) + ".lock")
    lock.acquire()
    try:
        with TestClient(create_app(settings)) as client:
            training = {"detail": "The model is still training; try again in a minute."}
            assert client.get("/health").json() == {"status": "ok"}
            assert (client.get("/ready").status_code, client.get("/ready").json()) == (
                503,
                training,
            )
            assert client.get("/model").status_code == 503
            answer = post_file(client, png(holdout.images[1]))
            assert (answer.status_code, answer.json()) == (503, training)

            lock.release()
            assert client.app.state.predictor.wait(READY_WAIT)  # type: ignore[attr-defined]
            assert client.get("/ready").status_code == 200
            assert post_file(client, png(holdout.images[1])).json()["prediction"] == "3"
            # the prediction process starts once training is over, and takes over
            predictor = client.app.state.predictor  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while not (predictor.pool and predictor.pool.running):
                assert time.monotonic() < deadline, "no prediction process after training"
                time.sleep(0.05)
            assert post_file(client, png(holdout.images[1])).json()["prediction"] == "3"
    finally:
        if lock.is_locked:
            lock.release()
    assert settings.model_path.is_file()


def test_training_failure_is_reported_by_ready(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, model_path=tmp_path)  # a folder: the save must fail
    with TestClient(create_app(settings)) as client:
        client.app.state.predictor.wait(READY_WAIT)  # type: ignore[attr-defined]
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("The model could not be trained: ")
        assert client.get("/health").status_code == 200


def test_refuses_to_start_without_data_or_model(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mnist_data_dir=None)  # the only mirror refuses at once
    start = time.monotonic()
    with pytest.raises(DatasetError, match="set MNIST_DATA_DIR"), TestClient(create_app(settings)):
        pass
    assert time.monotonic() - start < 10


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/predict/mnist", "/predict/mnist/batch", "/predict/number",
        "/health", "/ready", "/model", "/metrics",
        "/api/register/", "/api/login/", "/api/logout/", "/api/profile/", "/api/predict/",
        "/api/history/", "/api/history/{prediction_id}/", "/api/history/{prediction_id}/image/",
    }  # fmt: skip
    predict = spec["paths"]["/predict/mnist"]["post"]
    assert predict["description"] == "Recognise the handwritten digit in an uploaded image."
    assert set(predict["responses"]) == {"200", "400", "401", "413", "422", "503"}
    assert predict["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Prediction"
    }
    assert spec["components"]["securitySchemes"]["Token"] == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "`Token <key>`, with the key from /api/register/ or /api/login/.",
    }  # fmt: skip
    assert spec["paths"]["/api/profile/"]["get"]["security"] == [{"Token": []}]
    example = spec["components"]["schemas"]["Prediction"]["examples"][0]
    assert example["prediction"] == "7" and len(example["probabilities"]) == 10
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.text  # works without internet access
    assets = [
        part.split('"')[0] for part in docs.text.split('src="')[1:] + docs.text.split('href="')[1:]
    ]
    local = [url for url in assets if url.startswith("/static-offline-docs/")]
    assert len(local) >= 2
    for url in local:
        assert client.get(url).status_code == 200


def test_include_processed_shows_what_the_model_saw(
    client: TestClient, holdout: dataset.Digits
) -> None:
    digit = holdout.images[1]
    answer = client.post(
        "/predict/mnist?include=processed", files={"file": ("d.png", png(digit), "image/png")}
    )
    body = answer.json()
    assert answer.status_code == 200
    assert set(body) == {"prediction", "confidence", "probabilities", "model_version", "processed"}
    with Image.open(io.BytesIO(base64.b64decode(body["processed"]))) as seen:
        assert (seen.format, seen.mode, seen.size) == ("PNG", "L", (28, 28))
        assert np.array_equal(np.asarray(seen), digit)  # an MNIST-format upload is seen as is

    rng = np.random.default_rng(0)
    photo = client.post(
        "/predict/mnist?include=processed",
        files={"file": ("p.jpg", styles.paper_photo(digit, rng), "image/jpeg")},
    ).json()
    with Image.open(io.BytesIO(base64.b64decode(photo["processed"]))) as seen:
        pixels = np.asarray(seen, dtype=np.float32)
    assert np.corrcoef(pixels.ravel(), digit.ravel())[0, 1] > 0.8  # the photo, normalised

    wrong = client.post(
        "/predict/mnist?include=everything", files={"file": ("d.png", png(digit), "image/png")}
    )
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["query", "include"]


def post_batch(client: TestClient, uploads: list[tuple[str, bytes]]) -> Any:
    return client.post(
        "/predict/mnist/batch",
        files=[("files", (name, data, "image/png")) for name, data in uploads],
    )


def test_batch_answers_each_file_in_order(client: TestClient, holdout: dataset.Digits) -> None:
    rng = np.random.default_rng(4)
    three = png(holdout.images[1])
    uploads = [
        ("three.png", three),
        ("notes.txt", b"not an image"),
        ("empty.png", b""),
        ("blank.png", png(np.full((60, 60), 255, np.uint8))),
        ("photo.jpg", styles.paper_photo(holdout.images[1], rng)),
        ("huge.png", b"\x00" * 5_000_001),
        *[(f"digit{i}.png", png(holdout.images[i])) for i in range(10, 20)],
    ]
    answer = post_batch(client, uploads)
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_version"] == client.get("/model").json()["version"]
    results = body["results"]
    assert [item["index"] for item in results] == list(range(len(uploads)))
    assert [item["filename"] for item in results] == [name for name, _ in uploads]
    errors = [(item["error"] or {}).get("status") for item in results[:6]]
    assert errors == [None, 400, 400, 400, None, 413]
    assert results[1]["error"]["detail"] == "File provided is not an image."
    assert results[2]["error"]["detail"] == "The uploaded file is empty."
    assert results[3]["error"]["detail"] == "No digit found in the image."
    assert results[5]["error"]["detail"] == "Upload is over 5 MB, the limit. Send a smaller image."
    assert (results[0]["prediction"], results[4]["prediction"]) == ("3", "3")
    # each answer is the one the file gets on its own
    for (name, data), item in list(zip(uploads, results, strict=True))[6:]:
        alone = post_file(client, data, name=name).json()
        assert item["prediction"] == alone["prediction"]
        # float32 products of other shapes round differently in the last bits
        assert np.allclose(item["probabilities"], alone["probabilities"], atol=1e-6)
        assert item["error"] is None


def test_a_large_batch_shared_out_between_the_prediction_processes_keeps_its_order(
    settings: Settings, holdout: dataset.Digits
) -> None:
    with TestClient(create_app(settings.model_copy(update={"prediction_processes": 2}))) as client:
        assert client.app.state.predictor.wait(READY_WAIT)  # type: ignore[attr-defined]
        batch_in_two_shares(client, holdout)


def batch_in_two_shares(client: TestClient, holdout: dataset.Digits) -> None:
    """70 digits and a bad file: two shares of 35 uploads, one to each process."""
    digits = [png(holdout.images[i]) for i in range(30, 100)]
    uploads = [(f"digit{i}.png", data) for i, data in enumerate(digits)]
    uploads.insert(40, ("notes.txt", b"not an image"))
    results = post_batch(client, uploads).json()["results"]
    assert [item["filename"] for item in results] == [name for name, _ in uploads]
    assert results[40]["error"]["detail"] == "File provided is not an image."
    alone = [post_file(client, data).json()["prediction"] for data in digits]
    assert [item["prediction"] for item in results[:40] + results[41:]] == alone


def test_batch_limits(tmp_path: Path, model_file: Path, holdout: dataset.Digits) -> None:
    settings = make_settings(
        tmp_path, model_path=model_file, max_batch_files=3, max_batch_bytes=10_000
    )
    digit = png(holdout.images[1])
    with TestClient(create_app(settings)) as client:
        too_many = post_batch(client, [("d.png", digit)] * 4)
        assert (too_many.status_code, too_many.json()) == (
            413,
            {"detail": "4 files sent; a batch holds at most 3."},
        )
        too_big = post_batch(client, [("d.png", b"\x00" * 50_000), ("e.png", b"\x00" * 50_000)])
        assert too_big.status_code == 413
        assert too_big.json()["detail"].startswith(
            "Upload is 100.3 kB; the limit is 10 kB. Send fewer or smaller images."
        )
        assert client.post("/predict/mnist/batch").status_code == 422
        assert post_batch(client, [("d.png", digit)] * 3).status_code == 200
