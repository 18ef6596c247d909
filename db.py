"""Storage: every SQL statement of the service, written with SQLAlchemy Core.

Functions take keyword arguments and return plain dicts; nothing outside this module builds SQL.
The schema is created and upgraded at start-up by numbered migrations, recorded in the table
`schema_version`. Nothing here is SQLite-only: SQLite gets WAL mode, foreign keys and a busy
timeout when the URL names it, and the same statements run on PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
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
    sa.Column("result", sa.Integer, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("probabilities", sa.Text, nullable=False),  # JSON list of 10 floats
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

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


def _create(*tables: sa.Table) -> Callable[[Connection], None]:
    def migrate(connection: Connection) -> None:
        for table in tables:
            table.create(connection)

    return migrate


def _never_reuse_prediction_ids(connection: Connection) -> None:
    """SQLite: remake the predictions table with AUTOINCREMENT, every row kept as it is."""
    if connection.dialect.name != "sqlite":
        return
    made = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'predictions'"
    ).scalar_one()
    if "AUTOINCREMENT" in made.upper():  # made by migration 1 from today's table definition
        return
    connection.exec_driver_sql("ALTER TABLE predictions RENAME TO predictions_before_2")
    connection.exec_driver_sql("DROP INDEX ix_predictions_user_newest")
    predictions.create(connection)
    names = ", ".join(column.name for column in predictions.c)
    connection.exec_driver_sql(
        f"INSERT INTO predictions ({names}) SELECT {names} FROM predictions_before_2"  # noqa: S608 -- our own column names
    )
    connection.exec_driver_sql("DROP TABLE predictions_before_2")


# Numbered migrations, applied in order, each once. Append; never edit a published one.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (
        1,
        "users, tokens, predictions, login failures",
        _create(users, tokens, predictions, login_failures),
    ),
    (2, "prediction ids are never reused", _never_reuse_prediction_ids),
]

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
    with _write_locks.get(engine) or nullcontext(), engine.connect() as plain:
        connection = plain.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            yield connection


def connect(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, foreign keys and a 5 s busy timeout."""
    if url.startswith("sqlite"):
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
            # migrations ask for IMMEDIATE: the write lock first, then a fresh read
            mode = connection.get_execution_options().get("sqlite_begin", "")
            connection.exec_driver_sql(f"BEGIN {mode}".strip())

        _write_locks[engine] = threading.Lock()
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


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


def _applied(connection: Connection, number: int) -> bool:
    found = connection.execute(
        sa.select(schema_version.c.version).where(schema_version.c.version == number)
    ).first()
    return found is not None


def _apply_once(engine: Engine, number: int, apply: Callable[[Connection], None]) -> None:
    """Apply migration `number` unless it is recorded, recording it in the same transaction.

    SQLite: BEGIN IMMEDIATE takes the write lock before reading, so workers booting together
    take turns and later ones find the migration recorded. PostgreSQL: DDL is transactional;
    a worker that loses the race fails on the existing table and finds the record instead.
    """
    try:
        with engine.connect() as plain:
            connection = plain.execution_options(sqlite_begin="IMMEDIATE")
            with connection.begin():
                if number == 0:
                    schema_version.create(connection, checkfirst=True)
                elif not _applied(connection, number):
                    apply(connection)
                    connection.execute(
                        schema_version.insert().values(version=number, applied_at=now())
                    )
    except sa.exc.DBAPIError:
        with engine.connect() as check:
            present = sa.inspect(check).has_table(schema_version.name)
            if not present or (number and not _applied(check, number)):
                raise


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


def migrate(engine: Engine) -> int:
    """Bring the schema up to date; safe from several processes at once. Returns its version."""
    _apply_once(engine, 0, lambda connection: None)  # the version table itself
    for number, _description, apply in MIGRATIONS:
        _apply_once(engine, number, apply)
    return MIGRATIONS[-1][0]


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
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(users).where(users.c.username_key == username.casefold())
        ).first()
    return _user(row) if row else None


def get_user(engine: Engine, *, user_id: int) -> dict[str, Any] | None:
    with engine.connect() as connection:
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
    with engine.connect() as connection:
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
    with engine.connect() as connection:
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
            "created_at": moment,
            "image_size": len(row["image"]),
        }
        for row in rows
    ]
    # one compiled statement for all rows (SQLAlchemy's "insertmanyvalues"), ids in row order
    statement = predictions.insert().returning(*PREDICTION_COLUMNS, sort_by_parameter_order=True)
    return [_prediction(row) for row in connection.execute(statement, values).all()]


def count_predictions(engine: Engine, *, user_id: int) -> int:
    with engine.connect() as connection:
        return int(connection.execute(_count_of(user_id)).scalar_one())


def _count_of(user_id: int) -> sa.Select[int]:
    return (
        sa.select(sa.func.count()).select_from(predictions).where(predictions.c.user_id == user_id)
    )


def list_predictions(
    engine: Engine, *, user_id: int, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """(how many the user has, one page of them newest first)."""
    with engine.connect() as connection:
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
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(*PREDICTION_COLUMNS).where(
                predictions.c.id == prediction_id, predictions.c.user_id == user_id
            )
        ).first()
    return _prediction(row) if row else None


def get_prediction_image(
    engine: Engine, *, user_id: int, prediction_id: int
) -> tuple[bytes, str] | None:
    with engine.connect() as connection:
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
