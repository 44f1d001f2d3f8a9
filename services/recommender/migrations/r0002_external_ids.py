"""Add string ids: `external_id` on items and users.

Revision ID: r0002_external_ids
Revises: r0001_recommender_tables
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0002_external_ids"
down_revision = "r0001_recommender_tables"
branch_labels = None
depends_on = None

_TABLES = ("reco_items", "reco_users")


def upgrade() -> None:
    for table in _TABLES:
        # Batch mode rebuilds the table on SQLite, which cannot add a constraint in place.
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("external_id", sa.String(200), nullable=True))
            batch.create_unique_constraint(f"uq_{table}_external_id", ["external_id"])


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_external_id", type_="unique")
            batch.drop_column("external_id")
