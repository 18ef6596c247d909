"""A history holds numbers too: a prediction's `kind` ("digit" or "number"); for a number, the
digits read (`number`) and each digit's details (`digits`, JSON), and no single `result`.

Every existing row is a digit and stays one. SQLite cannot drop a NOT NULL in place: its table
is remade, every row kept and ids never reused (AUTOINCREMENT, as 0002 made it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = (
    "id, user_id, result, confidence, probabilities, model_version, created_at, image, "
    "image_type, image_size, image_sha256"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("ALTER TABLE predictions ALTER COLUMN result DROP NOT NULL")
        op.execute("ALTER TABLE predictions ADD COLUMN kind VARCHAR(10) DEFAULT 'digit' NOT NULL")
        op.execute("ALTER TABLE predictions ADD COLUMN number VARCHAR(1000)")
        op.execute("ALTER TABLE predictions ADD COLUMN digits TEXT")
        return
    op.execute("ALTER TABLE predictions RENAME TO predictions_before_0004")
    op.execute("DROP INDEX ix_predictions_user_newest")
    op.execute(
        "CREATE TABLE predictions (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
        "user_id INTEGER NOT NULL, kind VARCHAR(10) DEFAULT 'digit' NOT NULL, result INTEGER, "
        "number VARCHAR(1000), confidence FLOAT NOT NULL, probabilities TEXT NOT NULL, "
        "digits TEXT, model_version VARCHAR(64) NOT NULL, created_at DATETIME NOT NULL, "
        "image BLOB NOT NULL, image_type VARCHAR(100) NOT NULL, image_size INTEGER NOT NULL, "
        "image_sha256 VARCHAR(64) NOT NULL, "
        "FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE)"
    )
    op.execute(
        f"INSERT INTO predictions ({COLUMNS}) "  # noqa: S608 -- our own column names
        f"SELECT {COLUMNS} FROM predictions_before_0004"
    )
    # ids go on from the highest the old table ever gave, not from the highest it kept
    op.execute("DELETE FROM sqlite_sequence WHERE name = 'predictions'")
    op.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'predictions', seq FROM sqlite_sequence "
        "WHERE name = 'predictions_before_0004'"
    )
    op.execute("DROP TABLE predictions_before_0004")
    op.create_index("ix_predictions_user_newest", "predictions", ["user_id", "created_at", "id"])


def downgrade() -> None:
    raise NotImplementedError("a history with numbers in it has no older form")
