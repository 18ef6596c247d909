"""Databases made by the service before Alembic (numbered migrations, table `schema_version`)
upgrade in place at start-up with every user, token, failed login and history row kept: a
SQLite file and a PostgreSQL dump made by that version through its HTTP API (tests/data)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

import db
from bench.postgres import Cluster
from conftest import ROOT, SAMPLE_DIR, make_settings
from main import create_app

DATA = Path(__file__).parent / "data"
PASSWORD = "correct horse battery"
# the tokens the old version's API gave Ada (at registration, then at login)
TOKENS = {
    "sqlite": ("CY4icnLPbhdZmoImLpsLpq0m-q7t9sTB3FgTkYQP-hA",
               "nZFYjbIjw-jw-y-AMSuPkgQNEJsIyIGEaJIcV2nhlgQ"),
    "postgresql": ("LQ1giP79ZoLHxj9cnnV0O11ryqKwhgoRwPBpMBeu4sA",
                   "bfwbIQm-e1pBlhmo0m_J-F1mH47766lJqGEBm3TIyfA"),
}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def legacy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, URL) of a copy of the old version's database."""
    if request.param == "sqlite":
        shutil.copy(DATA / "legacy-sqlite.db", tmp_path / "legacy.db")
        yield "sqlite", f"sqlite:///{tmp_path / 'legacy.db'}"
        return
    cluster: Cluster = request.getfixturevalue("postgres")
    name = f"legacy_{tmp_path.name[-8:]}".lower().replace("-", "_")
    url = cluster.create_database(name)
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute((DATA / "legacy-postgres.sql").read_bytes())
    yield "postgresql", url
    cluster.drop_database(name)


def _keep_tokens_alive(url: str) -> None:
    """The old tokens were given out for 30 days on 2026-11-25; the test runs in any year."""
    engine = db.connect(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE tokens SET expires_at = '2100-01-01 00:00:00+00:00'")
    engine.dispose()


def test_an_old_database_upgrades_with_everything_kept(
    legacy: tuple[str, str], tmp_path: Path, model_file: Path
) -> None:
    kind, url = legacy
    _keep_tokens_alive(url)
    engine = db.connect(url)
    assert db.revision(engine) is None  # not yet Alembic's
    settings = make_settings(tmp_path, database_url=url, model_path=model_file)
    with TestClient(create_app(settings)) as client:
        assert db.revision(engine) == "0004"
        assert "schema_version" not in sa.inspect(engine).get_table_names()
        for token in TOKENS[kind]:  # both of Ada's tokens still work
            page = client.get("/api/history/", headers={"Authorization": f"Token {token}"})
            assert page.status_code == 200
            assert [(item["id"], item["result"]) for item in page.json()["results"]] == [(1, 3)]
        image = client.get(
            "/api/history/1/image/", headers={"Authorization": f"Token {TOKENS[kind][1]}"}
        )
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert image.headers["content-type"] == "image/png"
        # the password hash is kept: the old password logs in
        login = client.post("/api/login/", json={"username": "ada", "password": PASSWORD})
        assert login.status_code == 200 and login.json()["user_id"] == 1
        me = client.get(
            "/api/profile/", headers={"Authorization": f"Token {login.json()['token']}"}
        )
        assert me.json()["username"] == "Ada" and me.json()["email"] == "ada@example.com"
        # grace's failed login still counts towards her throttle
        ten_years = timedelta(days=3650)
        assert len(db.recent_login_failures(engine, username="grace", window=ten_years)) == 1
        # new rows carry on after the old ones: ids are never reused
        kept = client.post(
            "/api/predict/",
            files={"image": ("again.png", image.content, "image/png")},
            headers={"Authorization": f"Token {TOKENS[kind][0]}"},
        )
        assert kept.status_code == 201 and kept.json()["id"] == 2
        assert kept.json()["result"] == 3
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_python_m_db_upgrade_and_alembic_s_own_command(database_url: str, tmp_path: Path) -> None:
    """`python -m db upgrade` by hand; `alembic current` (alembic.ini) reads the same revision."""
    environment = {"DATABASE_URL": database_url, "MNIST_DATA_DIR": str(SAMPLE_DIR)}

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *command],
            env=environment, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    assert run("db", "revision").stdout.strip() == "none"
    upgrade = run("db", "upgrade")
    assert upgrade.returncode == 0 and upgrade.stdout.strip() == "0004", upgrade.stderr
    current = run("alembic", "current")
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip() == "0004 (head)"
