"""The storage module on a real SQLite file and a real PostgreSQL database: migrations,
pragmas, constraints."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import db


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = db.connect(database_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


def test_a_new_sqlite_database_gets_its_folder(tmp_path: Path) -> None:
    engine = db.connect(f"sqlite:///{tmp_path / 'sub' / 'digits.db'}")
    assert db.revision(engine) is None
    assert db.upgrade(engine) == db.head() == "0004"
    assert (tmp_path / "sub" / "digits.db").exists()


def test_upgrades_run_once_and_record_the_revision(engine: sa.Engine) -> None:
    assert db.upgrade(engine) == "0004"  # a second run changes nothing
    assert db.revision(engine) == "0004"
    assert set(sa.inspect(engine).get_table_names()) == {
        "alembic_version", "users", "tokens", "predictions", "login_failures",
    }  # fmt: skip


def test_the_migrations_make_exactly_the_tables_the_code_uses(engine: sa.Engine) -> None:
    """Alembic's autogenerate finds nothing to add, drop or alter between the migrated database
    and db.metadata: columns, types, nullability, indexes, unique and foreign keys."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []


def test_concurrent_upgrades(database_url: str) -> None:
    """Replicas booting together all upgrade; the schema is made once and nobody fails."""
    engines = [db.connect(database_url) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(db.upgrade, engines)) == ["0004"] * 4
    for engine in engines:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_runs_in_wal_mode_with_foreign_keys(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_deleting_a_user_deletes_their_tokens_and_predictions(engine: sa.Engine) -> None:
    user = db.create_user(engine, username="ada", email="a@example.com", password_hash="x")
    db.add_token(engine, user_id=user["id"], token_hash="h" * 64, lifetime=timedelta(days=1))
    db.add_prediction(
        engine, user_id=user["id"], result=3, confidence=0.9, probabilities=[0.1] * 10,
        model_version="v", image=b"png", image_type="image/png", image_sha256="s" * 64,
    )  # fmt: skip
    with engine.begin() as connection:
        connection.execute(db.users.delete())
    with engine.connect() as connection:
        for table in (db.tokens, db.predictions):
            assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0


def test_predictions_need_a_real_user(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        db.add_prediction(
            engine, user_id=42, result=3, confidence=0.9, probabilities=[0.1] * 10,
            model_version="v", image=b"png", image_type="image/png", image_sha256="s" * 64,
        )  # fmt: skip


def test_username_conflict(engine: sa.Engine) -> None:
    db.create_user(engine, username="Ada", email="a@example.com", password_hash="x")
    with pytest.raises(db.Conflict):
        db.create_user(engine, username="aDA", email="b@example.com", password_hash="y")
    assert db.find_user(engine, username="ADA")["email"] == "a@example.com"  # type: ignore[index]
    assert db.get_user(engine, user_id=99) is None


ROW = {
    "result": 3, "confidence": 0.9, "probabilities": [0.1] * 10, "model_version": "v",
    "image": b"png", "image_type": "image/png", "image_sha256": "s" * 64,
}  # fmt: skip


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_keeping_for_tokens_waits_for_another_process_writing(engine: sa.Engine) -> None:
    """Two prediction processes (two engines on one file) keep history at once. The second reads
    tokens and then writes: it must wait for the first, not fail with 'database is locked'
    because the first wrote between its read and its write."""
    user = db.create_user(engine, username="ada", email="a@example.com", password_hash="x")
    db.add_token(engine, user_id=user["id"], token_hash="h" * 64, lifetime=timedelta(days=1))
    other = db.connect(str(engine.url))
    pool = ThreadPoolExecutor(1)
    with db._writing(other) as holding:  # the other process, in the middle of its write
        holding.execute(db.predictions.insert().values(
            user_id=user["id"], created_at=db.now(), image_size=3,
            **{**ROW, "probabilities": "[]"},
        ))  # fmt: skip
        waiting = pool.submit(
            db.add_predictions_for_tokens, engine, [("h" * 64, ROW), ("x" * 64, ROW)]
        )
        time.sleep(0.3)
        assert not waiting.done()
    records = waiting.result(timeout=10)
    pool.shutdown()
    assert records[1] is None  # an unknown token
    assert records[0] is not None and records[0]["user_id"] == user["id"]
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(db.predictions))
        assert count.scalar() == 2
    other.dispose()


def test_keeping_for_a_good_token_with_nothing_to_store(engine: sa.Engine) -> None:
    user = db.create_user(engine, username="ada", email="a@example.com", password_hash="x")
    db.add_token(engine, user_id=user["id"], token_hash="h" * 64, lifetime=timedelta(days=1))
    assert db.add_predictions_for_tokens(engine, [("h" * 64, None), ("x" * 64, None)]) == [
        {},
        None,
    ]


def test_prediction_ids_are_never_reused(engine: sa.Engine) -> None:
    user = db.create_user(engine, username="ada", email="a@example.com", password_hash="x")
    row = {
        "user_id": user["id"], "result": 3, "confidence": 0.9, "probabilities": [0.1] * 10,
        "model_version": "v", "image": b"png", "image_type": "image/png", "image_sha256": "0",
    }  # fmt: skip
    first, newest = db.add_prediction(engine, **row), db.add_prediction(engine, **row)
    assert db.delete_prediction(engine, user_id=user["id"], prediction_id=newest["id"])
    assert db.add_prediction(engine, **row)["id"] == newest["id"] + 1 == first["id"] + 2


def test_a_database_of_the_first_schema_keeps_every_row_and_stops_reusing_ids(
    tmp_path: Path,
) -> None:
    """A file made by the first numbered migration (the predictions table without
    AUTOINCREMENT, schema_version at 1): Alembic's 0002 remakes the table."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DATETIME NOT NULL);
        INSERT INTO schema_version VALUES (1, '2026-11-24 10:00:00');
        CREATE TABLE users (id INTEGER PRIMARY KEY, username VARCHAR(150) NOT NULL,
            username_key VARCHAR(150) NOT NULL UNIQUE, email VARCHAR(254) NOT NULL,
            password_hash VARCHAR(255) NOT NULL, created_at DATETIME NOT NULL);
        CREATE TABLE tokens (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users
            (id) ON DELETE CASCADE, token_hash VARCHAR(64) NOT NULL UNIQUE,
            created_at DATETIME NOT NULL, expires_at DATETIME NOT NULL);
        CREATE TABLE login_failures (id INTEGER PRIMARY KEY, username_key VARCHAR(150) NOT NULL,
            failed_at DATETIME NOT NULL);
        CREATE TABLE predictions (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES
            users (id) ON DELETE CASCADE, result INTEGER NOT NULL, confidence FLOAT NOT NULL,
            probabilities TEXT NOT NULL, model_version VARCHAR(64) NOT NULL,
            created_at DATETIME NOT NULL, image BLOB NOT NULL, image_type VARCHAR(100) NOT NULL,
            image_size INTEGER NOT NULL, image_sha256 VARCHAR(64) NOT NULL);
        CREATE INDEX ix_predictions_user_newest ON predictions (user_id, created_at, id);
        INSERT INTO users VALUES (1, 'Ada', 'ada', 'a@example.com', 'hash',
            '2026-11-24 10:00:00.000000');
        INSERT INTO predictions VALUES (7, 1, 3, 0.9, '[0.1]', 'v', '2026-11-24 10:01:00.000000',
            x'89504e47', 'image/png', 4, 'sha');
        """
    )
    old.commit()
    old.close()
    engine = db.connect(f"sqlite:///{path}")
    assert db.upgrade(engine) == "0004"
    kept = db.get_prediction(engine, user_id=1, prediction_id=7)
    assert kept is not None and (kept["result"], kept["image_type"]) == (3, "image/png")
    assert db.get_prediction_image(engine, user_id=1, prediction_id=7) == (
        b"\x89PNG",
        "image/png",
    )
    assert db.delete_prediction(engine, user_id=1, prediction_id=7)
    row = {
        "user_id": 1, "result": 3, "confidence": 0.9, "probabilities": [0.1] * 10,
        "model_version": "v", "image": b"png", "image_type": "image/png", "image_sha256": "0",
    }  # fmt: skip
    assert db.add_prediction(engine, **row)["id"] == 8
