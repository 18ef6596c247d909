"""Alembic's environment: runs the scripts in versions/ on the connection `db.upgrade` hands
over, already inside its transaction and its lock. From the command line (`alembic upgrade
head`, with alembic.ini beside main.py) it opens DATABASE_URL's database under the same lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import db
from config import Settings


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=db.metadata)
    with context.begin_transaction():  # a no-op inside db's transaction: that one commits
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: run against the database")
given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    engine = db.connect(Settings().database)
    try:
        with db.migrating(engine) as connection:
            run(connection)
    finally:
        engine.dispose()
