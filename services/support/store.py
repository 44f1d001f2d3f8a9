"""Database reads and writes of the support service. Routes and steps go through here."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.support.errors import DraftNotFoundError, TicketNotFoundError
from services.support.models import (
    DRAFT_KIND_NO_ANSWER,
    Article,
    Draft,
    Feedback,
    Message,
    Passage,
    PiiReveal,
    Ticket,
)
from shared.data import normalize_text

__all__ = [
    "ArticleRecord",
    "PassageRecord",
    "TicketFilters",
    "add_articles",
    "add_feedback",
    "article_hash",
    "count_drafts",
    "count_tickets",
    "create_ticket",
    "get_draft",
    "get_passages",
    "get_ticket",
    "latest_draft",
    "list_articles",
    "list_feedback",
    "list_intents",
    "list_resolved_tickets",
    "list_ticket_feedback",
    "list_tickets",
    "record_reveal",
    "record_triage",
    "save_draft",
    "save_passages",
]


@dataclass(frozen=True)
class ArticleRecord:
    """An article to store: `body` may hold ``{{slot}}`` markers."""

    body: str
    source: str
    title: str = ""
    intent: str | None = None
    slots: tuple[str, ...] = ()


@dataclass(frozen=True)
class PassageRecord:
    """A retrieved source to store for a ticket, ranked from 1."""

    rank: int
    kind: str
    source_id: int
    score: float
    text: str
    intent: str | None = None


@dataclass(frozen=True)
class TicketFilters:
    """Filters of the ticket queue; `None` means any."""

    status: str | None = None
    intent: str | None = None
    needs_human: bool | None = None
    is_out_of_scope: bool | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None


def create_ticket(
    session: Session,
    *,
    text: str,
    subject: str = "",
    external_id: str | None = None,
    channel: str = "api",
    pii_kinds: Sequence[str] = (),
    pii_token: str | None = None,
    subject_pii_token: str | None = None,
) -> tuple[Ticket, bool]:
    """Store a cleaned, masked ticket and its first message.

    Returns:
        The ticket and whether it was created; a known `external_id` returns the
        stored ticket and ``False`` instead of a duplicate.
    """
    if external_id is not None:
        existing = session.scalar(select(Ticket).where(Ticket.external_id == external_id))
        if existing is not None:
            return existing, False
    ticket = Ticket(
        external_id=external_id,
        channel=channel,
        subject=subject,
        text=text,
        pii_kinds=sorted(set(pii_kinds)),
        pii_token=pii_token,
        subject_pii_token=subject_pii_token,
        status="new",
    )
    ticket.messages.append(Message(author="customer", text=text))
    try:
        with session.begin_nested():
            session.add(ticket)
            session.flush()
    except IntegrityError:
        # Another request stored the same external id between our read and write.
        existing = session.scalar(select(Ticket).where(Ticket.external_id == external_id))
        if existing is None:
            raise
        return existing, False
    return ticket, True


def get_ticket(session: Session, ticket_id: int) -> Ticket:
    """Return a ticket.

    Raises:
        TicketNotFoundError: If no ticket has that id.
    """
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketNotFoundError(
            f"No ticket has id {ticket_id!r}; `GET /api/v1/support/tickets` lists the ids."
        )
    return ticket


def list_tickets(
    session: Session, filters: TicketFilters | None = None, *, limit: int = 50, offset: int = 0
) -> list[Ticket]:
    """Return tickets, newest first, matching `filters`."""
    query = _filtered(select(Ticket), filters or TicketFilters())
    query = query.order_by(Ticket.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


def count_tickets(session: Session, filters: TicketFilters | None = None) -> int:
    """Count tickets matching `filters`."""
    query = _filtered(select(func.count(Ticket.id)), filters or TicketFilters())
    return int(session.scalar(query) or 0)


def _filtered(query: Any, filters: TicketFilters) -> Any:
    if filters.status is not None:
        query = query.where(Ticket.status == filters.status)
    if filters.intent is not None:
        query = query.where(Ticket.intent == filters.intent)
    if filters.needs_human is not None:
        query = query.where(Ticket.needs_human == filters.needs_human)
    if filters.is_out_of_scope is not None:
        query = query.where(Ticket.is_out_of_scope == filters.is_out_of_scope)
    if filters.min_confidence is not None:
        query = query.where(Ticket.confidence >= filters.min_confidence)
    if filters.max_confidence is not None:
        query = query.where(Ticket.confidence <= filters.max_confidence)
    return query


def record_triage(
    session: Session,
    ticket: Ticket,
    *,
    intent: str | None,
    confidence: float | None,
    is_out_of_scope: bool,
    needs_human: bool,
    model: str,
) -> None:
    """Store the intent classifier's prediction for a ticket."""
    ticket.intent = intent
    ticket.confidence = confidence
    ticket.is_out_of_scope = is_out_of_scope
    ticket.needs_human = needs_human
    ticket.intent_model = model
    if ticket.status == "new":
        ticket.status = "triaged"


def save_passages(session: Session, ticket: Ticket, passages: Sequence[PassageRecord]) -> bool:
    """Store a ticket's retrieved passages once.

    Returns:
        ``False`` when the ticket already had passages (a repeated step), else ``True``.
    """
    if session.scalar(select(func.count(Passage.id)).where(Passage.ticket_id == ticket.id)):
        return False
    try:
        with session.begin_nested():
            for record in passages:
                session.add(
                    Passage(
                        ticket_id=ticket.id,
                        rank=record.rank,
                        kind=record.kind,
                        source_id=record.source_id,
                        score=record.score,
                        intent=record.intent,
                        text=record.text,
                    )
                )
            session.flush()
    except IntegrityError:
        return False
    if ticket.status in ("new", "triaged"):
        ticket.status = "retrieved"
    return True


def get_passages(session: Session, ticket_id: int) -> list[Passage]:
    """Return a ticket's passages by rank."""
    query = select(Passage).where(Passage.ticket_id == ticket_id).order_by(Passage.rank)
    return list(session.scalars(query))


def save_draft(session: Session, ticket: Ticket, **fields: Any) -> Draft | None:
    """Store a ticket's draft under revision ``fields.get('revision', 1)``.

    A ``no_answer`` draft also puts the ticket in the human queue.

    Returns:
        The new draft, or ``None`` when that revision already exists (a repeated step).
    """
    draft = Draft(ticket_id=ticket.id, **fields)
    try:
        with session.begin_nested():
            session.add(draft)
            session.flush()
    except IntegrityError:
        return None
    if ticket.status in ("new", "triaged", "retrieved"):
        ticket.status = "drafted"
    if draft.kind == DRAFT_KIND_NO_ANSWER:
        ticket.needs_human = True
    return draft


def latest_draft(session: Session, ticket_id: int) -> Draft | None:
    """Return the ticket's newest draft, or ``None``."""
    query = (
        select(Draft).where(Draft.ticket_id == ticket_id).order_by(Draft.revision.desc()).limit(1)
    )
    return session.scalar(query)


def count_drafts(session: Session, ticket_id: int) -> int:
    """Count a ticket's drafts."""
    return int(
        session.scalar(select(func.count(Draft.id)).where(Draft.ticket_id == ticket_id)) or 0
    )


def get_draft(session: Session, draft_id: int) -> Draft:
    """Return a draft.

    Raises:
        DraftNotFoundError: If no draft has that id.
    """
    draft = session.get(Draft, draft_id)
    if draft is None:
        raise DraftNotFoundError(f"No draft has id {draft_id!r}.")
    return draft


def add_feedback(
    session: Session,
    draft: Draft,
    *,
    action: str,
    final_text: str | None = None,
    reason: str | None = None,
    corrected_intent: str | None = None,
    agent: str = "",
) -> Feedback:
    """Store an agent's verdict; an accepted or edited reply answers the ticket."""
    feedback = Feedback(
        draft_id=draft.id,
        ticket_id=draft.ticket_id,
        action=action,
        final_text=final_text,
        reason=reason,
        corrected_intent=corrected_intent,
        agent=agent,
    )
    session.add(feedback)
    ticket = get_ticket(session, draft.ticket_id)
    if action in ("accept", "edit"):
        sent = final_text if action == "edit" and final_text else draft.text
        ticket.resolution = sent
        ticket.status = "answered"
        ticket.resolved_at = dt.datetime.now(dt.UTC)
        ticket.messages.append(Message(author="agent", text=sent))
    session.flush()
    return feedback


def list_feedback(session: Session) -> list[tuple[Feedback, Draft, Ticket]]:
    """Return every feedback row with its draft and ticket, oldest first."""
    query = (
        select(Feedback, Draft, Ticket)
        .join(Draft, Feedback.draft_id == Draft.id)
        .join(Ticket, Feedback.ticket_id == Ticket.id)
        .order_by(Feedback.id)
    )
    return [(row[0], row[1], row[2]) for row in session.execute(query)]


def list_resolved_tickets(session: Session) -> list[Ticket]:
    """Return tickets answered with a reply, the second source of retrieval."""
    query = select(Ticket).where(Ticket.resolution.is_not(None)).order_by(Ticket.id)
    return list(session.scalars(query))


def article_hash(body: str, intent: str | None) -> str:
    """Return the key that deduplicates articles: normalised body plus intent."""
    key = f"{intent or ''}\n{normalize_text(body)}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def add_articles(session: Session, records: Iterable[ArticleRecord]) -> tuple[list[Article], int]:
    """Store new articles, skipping any whose body and intent are already stored.

    Returns:
        The stored articles and the number of duplicates skipped.
    """
    pending: dict[str, ArticleRecord] = {}
    skipped = 0
    for record in records:
        key = article_hash(record.body, record.intent)
        if key in pending:
            skipped += 1
        else:
            pending[key] = record
    known = (
        set(
            session.scalars(
                select(Article.content_hash).where(Article.content_hash.in_(list(pending)))
            )
        )
        if pending
        else set()
    )
    added = []
    for key, record in pending.items():
        if key in known:
            skipped += 1
            continue
        article = Article(
            source=record.source,
            title=record.title,
            body=record.body,
            intent=record.intent,
            slots=list(record.slots),
            content_hash=key,
            is_active=True,
        )
        session.add(article)
        added.append(article)
    session.flush()
    return added, skipped


def list_articles(session: Session, ids: Sequence[int] | None = None) -> list[Article]:
    """Return active articles, all or those with the given ids, by id."""
    query = select(Article).where(Article.is_active.is_(True)).order_by(Article.id)
    if ids is not None:
        query = query.where(Article.id.in_(list(ids)))
    return list(session.scalars(query))


def record_reveal(session: Session, ticket: Ticket, *, agent: str) -> None:
    """Log that `agent` opened the unmasked text of `ticket`."""
    session.add(PiiReveal(ticket_id=ticket.id, agent=agent))
    session.flush()


def list_intents(session: Session) -> list[str]:
    """Return the distinct intents triage has given tickets, sorted."""
    query = select(Ticket.intent).where(Ticket.intent.is_not(None)).distinct()
    return sorted(str(intent) for intent in session.scalars(query))


def list_ticket_feedback(session: Session, ticket_id: int) -> list[Feedback]:
    """Return a ticket's feedback, oldest first."""
    query = select(Feedback).where(Feedback.ticket_id == ticket_id).order_by(Feedback.id)
    return list(session.scalars(query))
