"""Storage: every SQL statement of the service, written with SQLAlchemy Core.

Functions take keyword arguments and return plain dicts; nothing outside this module builds SQL.
The same statements run on SQLite (the embedded default: WAL mode, foreign keys, a busy timeout)
and on PostgreSQL (many replicas on one database: a connection pool for a web server). The
schema is created and upgraded at start-up by Alembic (migrations/), under a lock, so replicas
booting together upgrade it once; `python -m db upgrade` does it by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(150), nullable=False),
    # the username folded to lower case: unique, so "Ada" and "ada" cannot both register
    sa.Column("username_key", sa.String(150), nullable=False, unique=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # SHA-256, hex
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False, server_default="digit"),  # or "number"
    sa.Column("result", sa.Integer),  # the digit; none for a number
    sa.Column("number", sa.String(1000)),  # a number's digits, as read
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("probabilities", sa.Text, nullable=False),  # JSON list of 10 floats; [] for a number
    sa.Column("digits", sa.Text),  # a number's digits: JSON list of {digit, confidence, ...}
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # the upload itself lives in its record, so it is deleted with it
    sa.Column("image", sa.LargeBinary, nullable=False),
    sa.Column("image_type", sa.String(100), nullable=False),
    sa.Column("image_size", sa.Integer, nullable=False),
    sa.Column("image_sha256", sa.String(64), nullable=False),
    sa.Index("ix_predictions_user_newest", "user_id", "created_at", "id"),
    # ids are never reused (SQLite would hand out a deleted newest id again, and an old link
    # would then show someone's new image); PostgreSQL's sequences never reuse them anyway
    sqlite_autoincrement=True,
)

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username_key", sa.String(150), nullable=False, index=True),
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
)

PREDICTION_COLUMNS = [c for c in predictions.c if c.name != "image"]


class Conflict(Exception):
    """A unique value (a username) is taken."""


def now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every moment stored here is UTC
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# SQLite has one writer at a time, and a writer that finds the database locked sleeps and polls
# (1, 2, 5, 10 ms...). Writers of this process queue on a lock instead, which hands over at once:
# under 8 concurrent predictions that keep history, 17 ms a request went to that sleeping.
_write_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On SQLite it takes the write lock before anything else (BEGIN
    IMMEDIATE): a transaction that reads and then writes would otherwise fail at once, not
    wait, when another process wrote in between. This process's writers queue on a lock."""
    with _write_locks.get(engine) or nullcontext(), _checkout(engine) as plain:
        connection = plain.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            yield connection


@dataclass(frozen=True)
class Pool:
    """How many connections one engine keeps, and how long a request waits for one."""

    size: int = 5
    max_overflow: int = 5
    timeout: float = 10.0  # seconds to wait for a free connection: then 503
    connect_timeout: float = 5.0  # seconds to reach the server: then 503
    recycle: float = 1800.0  # seconds before a connection is replaced (idle-timeout proxies)


ONE_CONNECTION = Pool(size=1, max_overflow=0)  # a single-threaded user: the prediction process
_pools: weakref.WeakKeyDictionary[Engine, Pool] = weakref.WeakKeyDictionary()


def connect(url: str, pool: Pool = Pool()) -> Engine:
    """An engine for `url`. SQLite files get WAL, foreign keys and a 5 s busy timeout; a server
    database gets a pool of `pool.size` (+ `max_overflow` at peaks) connections, each checked
    before use, so one that the server closed (a restart) is replaced, not handed out."""
    if not url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            pool_size=pool.size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.timeout,
            pool_recycle=pool.recycle,
            pool_pre_ping=True,
            connect_args=_connect_timeout(url, pool.connect_timeout),
        )
        _pools[engine] = pool
        return engine
    database = sa.make_url(url).database
    if database and database != ":memory:":
        # a folder that cannot be made is reported when the database is first used
        with suppress(OSError):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 5, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Python's sqlite3 driver opens transactions only before INSERT/UPDATE/DELETE, so
        # CREATE TABLE would commit on its own and a migration would not be atomic. Take
        # transactions away from the driver; SQLAlchemy begins them (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        _use_wal(cursor)
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # writers and migrations ask for IMMEDIATE: the write lock first, then a fresh read
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())

    _write_locks[engine] = threading.Lock()
    return engine


def _connect_timeout(url: str, seconds: float) -> dict[str, Any]:
    # libpq's connect_timeout (whole seconds, at least 2); other drivers take their own
    if sa.make_url(url).get_backend_name() == "postgresql":
        return {"connect_timeout": max(2, math.ceil(seconds))}
    return {}


# Who hears how long each checkout of a connection took: (engine's pool, seconds, whether every
# connection was in use when it was asked for, so it had to wait). Set by `watch`.
Watcher = Callable[[sa.Pool, float, bool], None]
_watchers: weakref.WeakKeyDictionary[Engine, Watcher] = weakref.WeakKeyDictionary()


def watch(engine: Engine, watcher: Watcher) -> None:
    """Call `watcher` after every checkout of a connection from `engine`'s pool (metrics)."""
    _watchers[engine] = watcher


def _busy(engine: Engine) -> bool:
    """Whether a checkout now would have to wait: every connection the pool may open is in use."""
    pool, limits = engine.pool, _pools.get(engine)
    if limits is None or not isinstance(pool, sa.QueuePool):
        return False
    return pool.checkedout() >= limits.size + limits.max_overflow


@contextmanager
def _checkout(engine: Engine) -> Iterator[Connection]:
    """A connection from the pool, its wait reported to the engine's watcher."""
    watcher = _watchers.get(engine)
    busy, started = _busy(engine), time.perf_counter()
    try:
        connection = engine.connect()
    finally:  # a checkout that timed out waited too
        if watcher:
            watcher(engine.pool, time.perf_counter() - started, busy)
    with connection:
        yield connection


MIN_FREE_BYTES = 16 * 1024 * 1024  # less free space than this under a SQLite file: full


def storage_full(engine: Engine) -> bool:
    """Whether the disk under a SQLite database file is (nearly) full. Other databases look
    after their own storage: False."""
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:":
        return False
    try:
        return shutil.disk_usage(Path(database).parent).free < MIN_FREE_BYTES
    except OSError:
        return False


def _use_wal(cursor: Any) -> None:
    """Switch the database to WAL (it stays so, in the file). The switch needs an exclusive
    lock and fails at once, without waiting, while another connection holds one: that only
    happens while workers race to create a new database, so retry for up to 5 s."""
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    for _ in range(50):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            time.sleep(0.1)
    cursor.execute("PRAGMA journal_mode=WAL")


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# PostgreSQL advisory lock held while one replica upgrades the schema: the others wait for it,
# then find the schema at head and do nothing. (Any 64-bit number no other code uses.)
MIGRATION_LOCK = 0x6469676974730001


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A transaction that only one process at a time holds: PostgreSQL's advisory lock, or
    SQLite's write lock (BEGIN IMMEDIATE), taken before anything is read."""
    with engine.connect() as plain:
        connection = plain.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            yield connection


def _alembic(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision of the schema."""
    newest = ScriptDirectory.from_config(_alembic()).get_current_head()
    assert newest is not None
    return newest


def upgrade(engine: Engine) -> str:
    """Bring the schema up to date (Alembic, to head), safe from many processes at once, in one
    transaction: a failed upgrade leaves the database as it was. Returns the revision."""
    with migrating(engine) as connection:
        command.upgrade(_alembic(connection), "head")
    return head()


def revision(engine: Engine) -> str | None:
    """The schema's revision in the database; None before the first upgrade."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


# --- users --------------------------------------------------------------------------------


def create_user(engine: Engine, *, username: str, email: str, password_hash: str) -> dict[str, Any]:
    try:
        with _writing(engine) as connection:
            row = connection.execute(
                users.insert()
                .values(
                    username=username,
                    username_key=username.casefold(),
                    email=email,
                    password_hash=password_hash,
                    created_at=now(),
                )
                .returning(users.c.id, users.c.username, users.c.email, users.c.created_at)
            ).one()
    except sa.exc.IntegrityError as exc:
        raise Conflict(username) from exc
    return _user(row)


def find_user(engine: Engine, *, username: str) -> dict[str, Any] | None:
    with _checkout(engine) as connection:
        row = connection.execute(
            sa.select(users).where(users.c.username_key == username.casefold())
        ).first()
    return _user(row) if row else None


def get_user(engine: Engine, *, user_id: int) -> dict[str, Any] | None:
    with _checkout(engine) as connection:
        row = connection.execute(
            sa.select(users.c.id, users.c.username, users.c.email, users.c.created_at).where(
                users.c.id == user_id
            )
        ).first()
    return _user(row) if row else None


def _user(row: Any) -> dict[str, Any]:
    record = dict(row._mapping)
    record["created_at"] = _utc(record["created_at"])
    return record


# --- tokens -------------------------------------------------------------------------------


def add_token(engine: Engine, *, user_id: int, token_hash: str, lifetime: timedelta) -> None:
    issued = now()
    with _writing(engine) as connection:
        connection.execute(
            tokens.insert().values(
                user_id=user_id,
                token_hash=token_hash,
                created_at=issued,
                expires_at=issued + lifetime,
            )
        )


def token_owner(engine: Engine, *, token_hash: str) -> dict[str, Any] | None:
    """The token's row (user_id, token_hash, expires_at), or None when unknown or expired."""
    with _checkout(engine) as connection:
        live = _live_tokens(connection, {token_hash})
    return dict(live[0]._mapping) if live else None


def _live_tokens(connection: Connection, token_hashes: set[str]) -> list[Any]:
    """The rows (user_id, token_hash, expires_at) of those of these tokens that have not expired."""
    found = connection.execute(
        sa.select(tokens.c.user_id, tokens.c.token_hash, tokens.c.expires_at).where(
            tokens.c.token_hash.in_(sorted(token_hashes))
        )
    ).all()
    moment = now()
    return [row for row in found if _utc(row.expires_at) > moment]


def delete_token(engine: Engine, *, token_hash: str) -> None:
    with _writing(engine) as connection:
        connection.execute(tokens.delete().where(tokens.c.token_hash == token_hash))


# --- failed logins --------------------------------------------------------------------------


def record_login_failure(engine: Engine, *, username: str) -> None:
    with _writing(engine) as connection:
        connection.execute(
            login_failures.insert().values(username_key=username.casefold(), failed_at=now())
        )


def recent_login_failures(engine: Engine, *, username: str, window: timedelta) -> list[datetime]:
    """When `username`'s failed logins within `window` happened, oldest first."""
    with _checkout(engine) as connection:
        rows = connection.execute(
            sa.select(login_failures.c.failed_at)
            .where(
                login_failures.c.username_key == username.casefold(),
                login_failures.c.failed_at > now() - window,
            )
            .order_by(login_failures.c.failed_at)
        ).all()
    return [_utc(row.failed_at) for row in rows]


def clear_login_failures(engine: Engine, *, username: str) -> None:
    with _writing(engine) as connection:
        connection.execute(
            login_failures.delete().where(login_failures.c.username_key == username.casefold())
        )


# --- predictions ----------------------------------------------------------------------------


def _prediction(row: Any) -> dict[str, Any]:
    record = dict(row._mapping)
    record["probabilities"] = json.loads(record["probabilities"])
    record["digits"] = json.loads(record["digits"]) if record.get("digits") else None
    record["created_at"] = _utc(record["created_at"])
    return record


def add_prediction(engine: Engine, **row: Any) -> dict[str, Any]:
    """Store one prediction; its record. The row: user_id, result, confidence, probabilities,
    model_version, image, image_type, image_sha256."""
    with _writing(engine) as connection:
        (record,) = _insert_predictions(connection, [row])
    return record


def add_predictions_for_tokens(
    engine: Engine, rows: list[tuple[str, dict[str, Any] | None]]
) -> list[dict[str, Any] | None]:
    """Store each row (without its user_id) for the owner of its token, in one transaction that
    reads the tokens and writes the rows. Per row: its record; None when the token is unknown
    or expired; an empty dict when the token is good but there was no row to store."""
    with _writing(engine) as connection:
        live = _live_tokens(connection, {token for token, _ in rows})
        owners = {row.token_hash: row.user_id for row in live}
        owned = [
            {**row, "user_id": owners[token]}
            for token, row in rows
            if token in owners and row is not None
        ]
        stored = iter(_insert_predictions(connection, owned))
    return [
        None if token not in owners else {} if row is None else next(stored) for token, row in rows
    ]


def _insert_predictions(connection: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    moment = now()
    values = [
        {
            **row,
            "probabilities": json.dumps(row["probabilities"]),
            "digits": json.dumps(row["digits"]) if row.get("digits") is not None else None,
            "created_at": moment,
            "image_size": len(row["image"]),
        }
        for row in rows
    ]
    # one compiled statement for all rows (SQLAlchemy's "insertmanyvalues"), ids in row order
    statement = predictions.insert().returning(*PREDICTION_COLUMNS, sort_by_parameter_order=True)
    return [_prediction(row) for row in connection.execute(statement, values).all()]


def count_predictions(engine: Engine, *, user_id: int) -> int:
    with _checkout(engine) as connection:
        return int(connection.execute(_count_of(user_id)).scalar_one())


def _count_of(user_id: int) -> sa.Select[int]:
    return (
        sa.select(sa.func.count()).select_from(predictions).where(predictions.c.user_id == user_id)
    )


def list_predictions(
    engine: Engine, *, user_id: int, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """(how many the user has, one page of them newest first)."""
    with _checkout(engine) as connection:
        total = connection.execute(_count_of(user_id)).scalar_one()
        rows = connection.execute(
            sa.select(*PREDICTION_COLUMNS)
            .where(predictions.c.user_id == user_id)
            .order_by(predictions.c.created_at.desc(), predictions.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    return int(total), [_prediction(row) for row in rows]


def get_prediction(engine: Engine, *, user_id: int, prediction_id: int) -> dict[str, Any] | None:
    """The user's own prediction; another user's is as absent as a missing one."""
    with _checkout(engine) as connection:
        row = connection.execute(
            sa.select(*PREDICTION_COLUMNS).where(
                predictions.c.id == prediction_id, predictions.c.user_id == user_id
            )
        ).first()
    return _prediction(row) if row else None


def get_prediction_image(
    engine: Engine, *, user_id: int, prediction_id: int
) -> tuple[bytes, str] | None:
    with _checkout(engine) as connection:
        row = connection.execute(
            sa.select(predictions.c.image, predictions.c.image_type).where(
                predictions.c.id == prediction_id, predictions.c.user_id == user_id
            )
        ).first()
    return (bytes(row.image), row.image_type) if row else None


def delete_prediction(engine: Engine, *, user_id: int, prediction_id: int) -> bool:
    with _writing(engine) as connection:
        deleted = connection.execute(
            predictions.delete().where(
                predictions.c.id == prediction_id, predictions.c.user_id == user_id
            )
        ).rowcount
    return bool(deleted)


def main(argv: list[str] | None = None) -> int:
    """`python -m db upgrade`: upgrade DATABASE_URL's schema to head (what start-up does);
    `python -m db revision`: print the schema's revision."""
    from config import Settings  # settings belong to the service's entry points, not to storage

    parser = argparse.ArgumentParser(prog="python -m db", description=main.__doc__)
    parser.add_argument("action", choices=["upgrade", "revision"])
    action = parser.parse_args(argv).action
    engine = connect(Settings().database)
    try:
        print(upgrade(engine) if action == "upgrade" else revision(engine) or "none")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
