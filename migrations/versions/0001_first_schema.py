"""Users, tokens, predictions (with their uploads) and failed logins.

A database made before Alembic (numbered migrations in the table `schema_version`) has these
tables already: they are kept as they are, and 0003 retires `schema_version`.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("users"):
        return  # made by the numbered migrations this revision replaces
    moment = sa.DateTime(timezone=True)
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("username_key", sa.String(150), nullable=False, unique=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", moment, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("expires_at", moment, nullable=False),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("result", sa.Integer, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("probabilities", sa.Text, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("image", sa.LargeBinary, nullable=False),
        sa.Column("image_type", sa.String(100), nullable=False),
        sa.Column("image_size", sa.Integer, nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_predictions_user_newest", "predictions", ["user_id", "created_at", "id"])
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username_key", sa.String(150), nullable=False),
        sa.Column("failed_at", moment, nullable=False),
    )
    op.create_index("ix_login_failures_username_key", "login_failures", ["username_key"])


def downgrade() -> None:
    for table in ("login_failures", "predictions", "tokens", "users"):
        op.drop_table(table)
