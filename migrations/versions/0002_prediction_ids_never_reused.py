"""Prediction ids are never reused: SQLite's predictions table gets AUTOINCREMENT.

Without it SQLite hands a deleted newest id out again, and an old link would then show someone's
new image. A table made by 0001 has it already; one made by the first numbered migration is
remade with every row kept. PostgreSQL's sequences never reuse ids: nothing to do.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (
    "id, user_id, result, confidence, probabilities, model_version, created_at, image, "
    "image_type, image_size, image_sha256"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    made = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'predictions'"
    ).scalar_one()
    if "AUTOINCREMENT" in made.upper():
        return
    op.execute("ALTER TABLE predictions RENAME TO predictions_before_0002")
    op.execute("DROP INDEX ix_predictions_user_newest")
    op.execute(
        "CREATE TABLE predictions (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
        "user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, "
        "result INTEGER NOT NULL, confidence FLOAT NOT NULL, probabilities TEXT NOT NULL, "
        "model_version VARCHAR(64) NOT NULL, created_at DATETIME NOT NULL, image BLOB NOT NULL, "
        "image_type VARCHAR(100) NOT NULL, image_size INTEGER NOT NULL, "
        "image_sha256 VARCHAR(64) NOT NULL)"
    )
    op.execute(
        f"INSERT INTO predictions ({COLUMNS}) "  # noqa: S608 -- our own column names
        f"SELECT {COLUMNS} FROM predictions_before_0002"
    )
    op.execute("DROP TABLE predictions_before_0002")
    op.create_index("ix_predictions_user_newest", "predictions", ["user_id", "created_at", "id"])


def downgrade() -> None:
    pass  # ids that are never reused harm nothing
