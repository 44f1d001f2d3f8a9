"""Create the recommender tables.

Revision ID: r0001_recommender_tables
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001_recommender_tables"
down_revision = None
branch_labels = ("recommender",)
depends_on = None


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "reco_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("item_created_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
    )
    op.create_table(
        "reco_users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        _created_at(),
    )
    op.create_table(
        "reco_interactions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("reco_users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "item_id",
            sa.Integer(),
            sa.ForeignKey("reco_items.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("occurred_at", sa.Float(), nullable=False),
    )
    op.create_index(
        "ix_reco_interactions_user_time", "reco_interactions", ["user_id", "occurred_at"]
    )
    op.create_table(
        "reco_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(100), nullable=False, unique=True),
        sa.Column("top_n", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user_count", sa.Integer(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        _created_at(),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "reco_recommendations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "run_id",
            sa.String(100),
            sa.ForeignKey("reco_runs.run_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("reason_item_id", sa.Integer(), nullable=True),
        sa.Column("reason_tag", sa.Text(), nullable=True),
        sa.UniqueConstraint("run_id", "user_id", "rank", name="uq_reco_recommendations_rank"),
        sa.UniqueConstraint("run_id", "user_id", "item_id", name="uq_reco_recommendations_item"),
    )


def downgrade() -> None:
    for table in (
        "reco_recommendations",
        "reco_runs",
        "reco_interactions",
        "reco_users",
        "reco_items",
    ):
        op.drop_table(table)
