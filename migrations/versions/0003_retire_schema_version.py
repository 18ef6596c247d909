"""Alembic records the schema's revision from here on (table alembic_version): the numbered
migrations' table `schema_version`, where a database has one, is dropped.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TABLE IF EXISTS schema_version")


def downgrade() -> None:
    pass
