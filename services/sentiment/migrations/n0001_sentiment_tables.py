"""Create the sentiment tables.

Revision ID: n0001_sentiment_tables
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "n0001_sentiment_tables"
down_revision = None
branch_labels = ("sentiment",)
depends_on = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "sentiment_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        _timestamp("published_at"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("positive", sa.Float(), nullable=False),
        sa.Column("neutral", sa.Float(), nullable=False),
        sa.Column("negative", sa.Float(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("model", sa.String(250), nullable=False),
        _created_at(),
        sa.UniqueConstraint("external_id", name="uq_sentiment_items_external_id"),
    )
    op.create_index("ix_sentiment_items_source", "sentiment_items", ["source"])
    op.create_index("ix_sentiment_items_published_at", "sentiment_items", ["published_at"])
    op.create_index("ix_sentiment_items_label", "sentiment_items", ["label"])
    op.create_table(
        "sentiment_mentions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "item_id",
            sa.Integer(),
            sa.ForeignKey("sentiment_items.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("surface", sa.String(300), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.UniqueConstraint("item_id", "entity", "start", name="uq_sentiment_mentions"),
    )
    op.create_index("ix_sentiment_mentions_item_id", "sentiment_mentions", ["item_id"])
    op.create_index("ix_sentiment_mentions_entity", "sentiment_mentions", ["entity"])
    op.create_table(
        "sentiment_buckets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("granularity", sa.String(8), nullable=False),
        _timestamp("bucket_start"),
        sa.Column("n_positive", sa.Integer(), nullable=False),
        sa.Column("n_neutral", sa.Integer(), nullable=False),
        sa.Column("n_negative", sa.Integer(), nullable=False),
        sa.Column("score_sum", sa.Float(), nullable=False),
        sa.UniqueConstraint("entity", "granularity", "bucket_start", name="uq_sentiment_buckets"),
    )
    op.create_index("ix_sentiment_buckets_bucket_start", "sentiment_buckets", ["bucket_start"])
    op.create_table(
        "sentiment_alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _timestamp("started_at"),
        _timestamp("fired_at", nullable=True),
        _timestamp("resolved_at", nullable=True),
        _timestamp("last_true_start"),
        sa.Column("consecutive", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        _timestamp("observed_firing_at", nullable=True),
        _timestamp("observed_resolved_at", nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        _timestamp("acknowledged_at", nullable=True),
        _created_at(),
        sa.UniqueConstraint("fingerprint", "started_at", name="uq_sentiment_alerts_episode"),
    )
    op.create_index("ix_sentiment_alerts_fingerprint", "sentiment_alerts", ["fingerprint"])
    op.create_index("ix_sentiment_alerts_entity", "sentiment_alerts", ["entity"])
    op.create_index("ix_sentiment_alerts_state", "sentiment_alerts", ["state"])
    op.create_table(
        "sentiment_rule_state",
        sa.Column("rule", sa.String(100), primary_key=True),
        _timestamp("evaluated_until"),
    )
    op.create_table(
        "sentiment_notification_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("firing_ids", sa.JSON(), nullable=False),
        sa.Column("resolved_ids", sa.JSON(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        _timestamp("created_at"),
    )
    op.create_index(
        "ix_sentiment_notification_log_group_key", "sentiment_notification_log", ["group_key"]
    )
    op.create_table(
        "sentiment_silences",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("matchers", sa.JSON(), nullable=False),
        _timestamp("starts_at"),
        _timestamp("ends_at"),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        _created_at(),
    )
    op.create_index("ix_sentiment_silences_ends_at", "sentiment_silences", ["ends_at"])


def downgrade() -> None:
    for table in (
        "sentiment_silences",
        "sentiment_notification_log",
        "sentiment_rule_state",
        "sentiment_alerts",
        "sentiment_buckets",
        "sentiment_mentions",
        "sentiment_items",
    ):
        op.drop_table(table)
