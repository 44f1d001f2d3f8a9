"""Tables of the support service: tickets, messages, articles, passages, drafts, feedback.

Customer text is stored masked: PII placeholders such as ``[EMAIL_1]`` stand in
for the values, which live encrypted in `Ticket.pii_token` and are opened only
for an agent's view of the ticket.

Exactly-once processing rests on unique constraints, not on locks: a ticket has
at most one passage per rank and one draft per revision, so a step that runs
twice (a redelivered task) inserts nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.storage.base import Base

__all__ = [
    "ANSWERED_STATUSES",
    "ARTICLE_SOURCES",
    "DRAFT_KINDS",
    "DRAFT_KIND_FALLBACK",
    "DRAFT_KIND_GENERATED",
    "DRAFT_KIND_NO_ANSWER",
    "FEEDBACK_ACTIONS",
    "TICKET_STATUSES",
    "Article",
    "Draft",
    "Feedback",
    "Message",
    "Passage",
    "PiiReveal",
    "Ticket",
    "TicketStatus",
]

TicketStatus = Literal["new", "triaged", "retrieved", "drafted", "answered", "closed"]
TICKET_STATUSES: tuple[TicketStatus, ...] = (
    "new",
    "triaged",
    "retrieved",
    "drafted",
    "answered",
    "closed",
)
ANSWERED_STATUSES: tuple[TicketStatus, ...] = ("answered", "closed")
"""Statuses of a ticket whose reply is sent; such a ticket gets no new draft."""
ARTICLE_SOURCES = ("bitext", "markdown", "csv", "jsonl", "api")
FEEDBACK_ACTIONS = ("accept", "edit", "reject")
DRAFT_KIND_GENERATED = "generated"
"""Written by the drafter and grounded in its passages."""
DRAFT_KIND_FALLBACK = "fallback"
"""The best passage, used because the drafter failed or its draft was not grounded."""
DRAFT_KIND_NO_ANSWER = "no_answer"
"""No usable draft and no passage to fall back on; the ticket needs an agent's reply."""
DRAFT_KINDS = (DRAFT_KIND_GENERATED, DRAFT_KIND_FALLBACK, DRAFT_KIND_NO_ANSWER)


def _now_column() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Ticket(Base):
    """A customer request and what triage decided about it."""

    __tablename__ = "support_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    channel: Mapped[str] = mapped_column(String(32), default="api")
    subject: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text)
    pii_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    pii_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    subject_pii_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    intent: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    is_out_of_scope: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_human: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    intent_model: Mapped[str | None] = mapped_column(String(250), nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = _now_column()
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", cascade="all, delete-orphan"
    )


class Message(Base):
    """One message of a ticket's conversation, masked."""

    __tablename__ = "support_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _now_column()

    ticket: Mapped[Ticket] = relationship(back_populates="messages")


class Article(Base):
    """A knowledge-base article: an answer template with `{{slots}}`, tagged with an intent."""

    __tablename__ = "support_articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    slots: Mapped[list[str]] = mapped_column(JSON, default=list)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = _now_column()


class Passage(Base):
    """One retrieved source for a ticket: an article or a similar resolved ticket."""

    __tablename__ = "support_passages"
    __table_args__ = (UniqueConstraint("ticket_id", "rank", name="uq_support_passages_rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    rank: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    intent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    text: Mapped[str] = mapped_column(Text)


class Draft(Base):
    """A reply drafted for a ticket: generated, taken from the best passage, or none.

    `kind` is one of `DRAFT_KINDS`; a ``no_answer`` draft has empty `text`.
    """

    __tablename__ = "support_drafts"
    __table_args__ = (UniqueConstraint("ticket_id", "revision", name="uq_support_drafts_revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(Integer, default=1)
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(250), default="")
    citations: Mapped[list[int]] = mapped_column(JSON, default=list)
    grounding: Mapped[float | None] = mapped_column(Float, nullable=True)
    fallback_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    n_new_tokens: Mapped[int] = mapped_column(Integer, default=0)
    finished: Mapped[bool] = mapped_column(Boolean, default=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = _now_column()


class Feedback(Base):
    """An agent's verdict on a draft: accept, edit (with the sent text) or reject (with why)."""

    __tablename__ = "support_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    draft_id: Mapped[int] = mapped_column(
        ForeignKey("support_drafts.id", ondelete="CASCADE"), index=True
    )
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    final_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    corrected_intent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    agent: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = _now_column()


class PiiReveal(Base):
    """Audit record: an agent opened the unmasked text of a ticket."""

    __tablename__ = "support_pii_reveals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    agent: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = _now_column()
