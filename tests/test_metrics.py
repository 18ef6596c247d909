"""GET /metrics: Prometheus text with requests, latency, predictions per digit and the model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import dataset
import styles
from conftest import make_settings
from main import create_app


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when the series does not exist yet)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{name}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_requests_by_route_and_status_and_predictions_by_digit(
    client: TestClient, holdout: dataset.Digits
) -> None:
    # the counters live as long as the process: compare before and after
    before = client.get("/metrics").text
    three = styles.mnist_png(holdout.images[1], np.random.default_rng(0))
    for _ in range(2):
        assert client.post("/predict/mnist", files={"file": three}).status_code == 200
    assert client.post("/predict/mnist", files={"file": b"not an image"}).status_code == 400
    batch = [("files", three), ("files", three), ("files", b"junk")]
    assert client.post("/predict/mnist/batch", files=batch).status_code == 200
    assert client.get("/api/history/12345/").status_code == 401
    assert client.get("/no/such/page").status_code == 404

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    after = response.text

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    route = {"method": "POST", "route": "/predict/mnist"}
    assert grew("http_requests_total", **route, status="200") == 2
    assert grew("http_requests_total", **route, status="400") == 1
    # one series per route template, not one per id
    assert grew("http_requests_total", method="GET", route="/api/history/{prediction_id}/",
                status="401") == 1  # fmt: skip
    assert grew("http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert grew("http_request_duration_seconds_count", **route) == 3
    assert grew("digit_predictions_total", digit="3") == 4  # two single, two in the batch
    version = client.get("/model").json()["version"]
    assert sample(after, "digit_model_info", version=version) == 1
    assert sample(after, "digit_model_load_seconds") > 0


def test_metrics_show_the_database_pool(client: TestClient) -> None:
    before = client.get("/metrics").text
    account = {"username": "ada", "email": "ada@example.com", "password": "correct horse"}
    token = client.post("/api/register/", json=account).json()["token"]
    for _ in range(3):
        assert client.get("/api/profile/", headers={"Authorization": f"Token {token}"}).is_success
    after = client.get("/metrics").text
    # register: the user, its token; each profile: the token check, the user, the count
    checkouts = sample(after, "digit_db_checkout_seconds_count") - sample(
        before, "digit_db_checkout_seconds_count"
    )
    assert checkouts == 2 + 3 * 3
    # one client never waits (the counter lives as long as the process: compare)
    waits = sample(after, "digit_db_pool_waits_total") - sample(before, "digit_db_pool_waits_total")
    assert waits == 0
    # between requests every connection is back in the pool
    assert sample(after, "digit_db_connections", state="in_use") == 0
    assert sample(after, "digit_db_connections", state="idle") >= 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite: no pool size
def test_a_request_that_waits_in_vain_for_a_connection_is_a_503_and_counted(
    tmp_path: Path, model_file: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path, database_url=database_url, model_path=model_file,
        database_pool_size=1, database_max_overflow=0, database_pool_timeout=0.2,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        account = {"username": "ada", "email": "ada@example.com", "password": "correct horse"}
        token = client.post("/api/register/", json=account).json()["token"]
        before = client.get("/metrics").text
        engine = client.app.state.engine  # type: ignore[attr-defined]
        with engine.connect():  # the pool's only connection, held elsewhere
            busy = client.get("/api/profile/", headers={"Authorization": f"Token {token}"})
            after = client.get("/metrics").text
        assert (busy.status_code, busy.headers["Retry-After"]) == (503, "1")
        assert (
            sample(after, "digit_db_pool_waits_total") - sample(before, "digit_db_pool_waits_total")
            == 1
        )
        assert sample(after, "digit_db_connections", state="in_use") == 1
        assert client.get("/api/profile/", headers={"Authorization": f"Token {token}"}).is_success
