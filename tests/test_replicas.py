"""Many replicas on one PostgreSQL database: what one replica does, every other one sees; a
database that goes away and comes back is survived with 503s in between."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import dataset
import db
import main
from bench.postgres import Cluster
from conftest import make_settings, png
from main import create_app

PASSWORD = "correct horse battery"
ADA = {"username": "ada", "email": "ada@example.com", "password": PASSWORD}


def _replica(folder: Path, model_file: Path, url: str, **overrides: object) -> TestClient:
    """A replica with a data folder of its own; every replica serves the one model file."""
    settings = make_settings(folder, database_url=url, model_path=model_file, **overrides)
    return TestClient(create_app(settings))


@pytest.fixture
def replicas(
    tmp_path: Path, model_file: Path, postgres: Cluster
) -> Iterator[tuple[TestClient, TestClient]]:
    """Two replicas, each with its own data folder, on one PostgreSQL database."""
    url = postgres.create_database(f"replicas_{tmp_path.name[-8:]}".replace("-", "_"))
    with ExitStack() as stack:
        one, two = (
            stack.enter_context(_replica(tmp_path / name, model_file, url)) for name in "ab"
        )
        for replica in (one, two):
            assert replica.app.state.predictor.wait(60)  # type: ignore[attr-defined]
        yield one, two
    postgres.drop_database(url.rsplit("/", 1)[1])


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def test_a_token_from_one_replica_works_on_another_until_logout_on_either(
    replicas: tuple[TestClient, TestClient], holdout: dataset.Digits
) -> None:
    one, two = replicas
    token = one.post("/api/register/", json=ADA).json()["token"]
    assert two.get("/api/profile/", headers=_auth(token)).json()["username"] == "ada"
    kept = two.post("/api/predict/", files={"image": ("3.png", png(holdout.images[1]))},
                    headers=_auth(token))  # fmt: skip
    assert (kept.status_code, kept.json()["result"]) == (201, 3)
    # written through one replica, read and deleted through the other
    page = one.get("/api/history/", headers=_auth(token)).json()
    assert [item["id"] for item in page["results"]] == [kept.json()["id"]]
    assert one.get(f"/api/history/{kept.json()['id']}/image/", headers=_auth(token)).content == (
        png(holdout.images[1])
    )
    assert one.delete(f"/api/history/{kept.json()['id']}/", headers=_auth(token)).status_code == 204
    assert two.get(f"/api/history/{kept.json()['id']}/", headers=_auth(token)).status_code == 404
    # logging out on one replica revokes the token on every one
    assert two.post("/api/logout/", headers=_auth(token)).status_code == 204
    assert one.get("/api/profile/", headers=_auth(token)).status_code == 401


def test_the_failed_login_throttle_counts_across_replicas(
    replicas: tuple[TestClient, TestClient],
) -> None:
    one, two = replicas
    assert one.post("/api/register/", json=ADA).status_code == 201
    wrong = {"username": "ada", "password": "not the password"}
    statuses = [(one if n % 2 else two).post("/api/login/", json=wrong).status_code
                for n in range(5)]  # fmt: skip
    assert statuses == [400] * 5
    for replica in (one, two):  # five failures in all: both replicas throttle now
        throttled = replica.post("/api/login/", json={"username": "ada", "password": PASSWORD})
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0


def test_replicas_registering_at_once_give_each_username_to_exactly_one(
    replicas: tuple[TestClient, TestClient],
) -> None:
    one, two = replicas
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(
            lambda n: (one if n % 2 else two).post("/api/register/", json=ADA).status_code,
            range(8),
        ))  # fmt: skip
    assert sorted(statuses) == [201] + [409] * 7


def test_a_database_that_goes_away_and_comes_back(
    tmp_path: Path, model_file: Path, holdout: dataset.Digits, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart of PostgreSQL under a running replica: 503s with Retry-After while it is down
    (never a 500, never a hang; anonymous predictions go on), everything back when it is."""
    digit = {"image": ("3.png", png(holdout.images[1]))}
    with (
        Cluster.start() as cluster,
        _replica(
            tmp_path, model_file, cluster.create_database("digits"), database_connect_timeout=2
        ) as client,
    ):
        assert client.app.state.predictor.wait(60)  # type: ignore[attr-defined]
        token = client.post("/api/register/", json=ADA).json()["token"]
        assert client.post("/api/predict/", files=digit, headers=_auth(token)).status_code == 201

        cluster.stop()
        with caplog.at_level(logging.ERROR):
            down = [
                client.get("/api/history/", headers=_auth(token)),
                client.post("/api/predict/", files=digit, headers=_auth(token)),
                client.post("/api/login/", json={"username": "ada", "password": PASSWORD}),
                client.post("/api/register/", json={**ADA, "username": "grace"}),
            ]
        assert [answer.status_code for answer in down] == [503] * 4
        assert {answer.headers["Retry-After"] for answer in down} == {"1"}
        assert down[0].json()["detail"] == (
            "The database is busy or unavailable; try again in a moment."
        )
        anonymous = client.post("/predict/mnist", files={"file": png(holdout.images[1])})
        assert (anonymous.status_code, anonymous.json()["prediction"]) == (200, "3")
        assert client.get("/ready").status_code == 200  # predictions still served

        cluster.start_again()
        again = client.post("/api/predict/", files=digit, headers=_auth(token))
        assert again.status_code == 201
        page = client.get("/api/history/", headers=_auth(token)).json()
        assert page["count"] == 2 and page["results"][0]["id"] == again.json()["id"]
        assert (
            client.post("/api/login/", json={"username": "ada", "password": PASSWORD}).status_code
            == 200
        )


def test_a_replica_that_starts_before_its_database_upgrades_it_when_it_comes(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, holdout: dataset.Digits,
) -> None:  # fmt: skip
    monkeypatch.setattr(main, "UPGRADE_RETRY_SECONDS", (0.2,))
    with Cluster.start() as cluster:
        url = cluster.create_database("digits")
        cluster.stop()
        with caplog.at_level(logging.INFO), _replica(tmp_path, model_file, url) as client:
            assert client.app.state.predictor.wait(60)  # type: ignore[attr-defined]
            assert client.post("/api/register/", json=ADA).status_code == 503
            anonymous = client.post("/predict/mnist", files={"file": png(holdout.images[1])})
            assert anonymous.status_code == 200
            cluster.start_again()
            engine = db.connect(url)
            for _ in range(100):  # the app's loop retries every 0.2 s, in its own thread
                if db.revision(engine) == db.head():
                    break
                time.sleep(0.1)
            engine.dispose()
            assert client.post("/api/register/", json=ADA).status_code == 201
        messages = [record.getMessage() for record in caplog.records]
        assert any("cannot be reached or written" in message for message in messages)
        back = f"the database is back: schema at {db.head()}"
        assert any(back in message for message in messages)
