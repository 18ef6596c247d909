"""The storage module on a real SQLite file: migrations, pragmas, constraints."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import db


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = db.connect(f"sqlite:///{tmp_path / 'sub' / 'digits.db'}")  # the folder is made
    db.migrate(engine)
    return engine


def test_migrations_run_once_and_record_themselves(engine: sa.Engine) -> None:
    assert db.migrate(engine) == 1  # a second run changes nothing
    with engine.connect() as connection:
        versions = connection.execute(sa.select(db.schema_version.c.version)).scalars().all()
    assert versions == [1]
    assert set(sa.inspect(engine).get_table_names()) == {
        "schema_version", "users", "tokens", "predictions", "login_failures",
    }  # fmt: skip


def test_concurrent_migrations(tmp_path: Path) -> None:
    """Workers booting together all migrate; the schema is made once and nobody fails."""
    url = f"sqlite:///{tmp_path / 'digits.db'}"
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: db.migrate(db.connect(url)), range(4))) == [1, 1, 1, 1]


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
