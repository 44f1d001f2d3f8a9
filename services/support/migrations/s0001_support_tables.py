"""Create the support tables.

Revision ID: s0001_support_tables
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0001_support_tables"
down_revision = None
branch_labels = ("support",)
depends_on = None


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _ticket_fk() -> sa.Column:
    return sa.Column(
        "ticket_id",
        sa.Integer(),
        sa.ForeignKey("support_tickets.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def upgrade() -> None:
    op.create_table(
        "support_tickets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("external_id", sa.String(200), nullable=True, unique=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("pii_kinds", sa.JSON(), nullable=False),
        sa.Column("pii_token", sa.Text(), nullable=True),
        sa.Column("subject_pii_token", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("intent", sa.String(200), nullable=True, index=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("is_out_of_scope", sa.Boolean(), nullable=False),
        sa.Column("needs_human", sa.Boolean(), nullable=False, index=True),
        sa.Column("intent_model", sa.String(250), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        _created_at(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "support_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ticket_fk(),
        sa.Column("author", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _created_at(),
    )
    op.create_table(
        "support_articles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(200), nullable=True, index=True),
        sa.Column("slots", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        _created_at(),
    )
    op.create_table(
        "support_passages",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ticket_fk(),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("intent", sa.String(200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.UniqueConstraint("ticket_id", "rank", name="uq_support_passages_rank"),
    )
    op.create_table(
        "support_drafts",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ticket_fk(),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(250), nullable=False),
        sa.Column("citations", sa.JSON(), nullable=False),
        sa.Column("grounding", sa.Float(), nullable=True),
        sa.Column("fallback_reason", sa.Text(), nullable=True),
        sa.Column("n_new_tokens", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        _created_at(),
        sa.UniqueConstraint("ticket_id", "revision", name="uq_support_drafts_revision"),
    )
    op.create_table(
        "support_feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "draft_id",
            sa.Integer(),
            sa.ForeignKey("support_drafts.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        _ticket_fk(),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("final_text", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("corrected_intent", sa.String(200), nullable=True),
        sa.Column("agent", sa.String(200), nullable=False),
        _created_at(),
    )
    op.create_table(
        "support_pii_reveals",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ticket_fk(),
        sa.Column("agent", sa.String(200), nullable=False),
        _created_at(),
    )


def downgrade() -> None:
    for table in (
        "support_pii_reveals",
        "support_feedback",
        "support_drafts",
        "support_passages",
        "support_articles",
        "support_messages",
        "support_tickets",
    ):
        op.drop_table(table)
