"""The support pipeline: intake, then triage, retrieval and drafting per ticket.

Each step reads the ticket from the database, does its work and commits; a
step that finds its work already stored does nothing, so a redelivered task
or a repeated command never classifies, retrieves or drafts a ticket twice.
The batch functions run a step for many tickets with one model call, which is
how the file import and the benchmarks use them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from services.support import store
from services.support.cleaning import TicketTextError, clean_text
from services.support.drafting import DraftResult, draft_replies
from services.support.errors import (
    KnowledgeBaseError,
    TicketAnsweredError,
    TicketNotFoundError,
)
from services.support.models import ANSWERED_STATUSES, Draft, Ticket
from services.support.privacy import PiiVault, mask_pii
from services.support.retrieval import KnowledgeIndex, load_knowledge_index
from services.support.schemas import MAX_TICKET_CHARS, TicketCreate
from services.support.triage import classify_texts
from shared.settings import get_settings
from shared.storage import session_scope

__all__ = [
    "IntakeResult",
    "draft_tickets",
    "process_tickets",
    "retrieve_tickets",
    "save_streamed_draft",
    "store_ticket",
    "triage_tickets",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    """A stored ticket: its id and whether this call created it."""

    ticket_id: int
    created: bool


def store_ticket(request: TicketCreate) -> IntakeResult:
    """Clean, mask and store a ticket; nothing unmasked is stored in the clear.

    Raises:
        TicketTextError: If the text is empty after cleaning or too long.
    """
    cleaned = clean_text(request.text, max_chars=MAX_TICKET_CHARS)
    subject = _clean_subject(request.subject)
    # Subject and body are masked apart, so each has its own placeholder numbering
    # and its own sealed values.
    masked = mask_pii(cleaned)
    masked_subject = mask_pii(subject) if subject else None
    vault = PiiVault()
    kinds = [entity.kind for entity in masked.entities]
    kinds += [entity.kind for entity in masked_subject.entities] if masked_subject else []
    with session_scope() as session:
        ticket, created = store.create_ticket(
            session,
            text=masked.text,
            subject=masked_subject.text if masked_subject else "",
            external_id=request.external_id,
            channel=request.channel,
            pii_kinds=kinds,
            pii_token=vault.seal(masked.entities) if masked.entities else None,
            subject_pii_token=(
                vault.seal(masked_subject.entities)
                if masked_subject and masked_subject.entities
                else None
            ),
        )
        result = IntakeResult(ticket_id=ticket.id, created=created)
    logger.info(
        "ticket stored ticket_id=%s created=%s pii=%d", result.ticket_id, created, len(kinds)
    )
    return result


def _clean_subject(subject: str) -> str:
    try:
        return clean_text(subject, max_chars=500) if subject.strip() else ""
    except TicketTextError:
        return ""  # a subject of only markup is no subject


def triage_tickets(ticket_ids: Sequence[int]) -> int:
    """Classify the tickets not yet classified.

    Returns:
        How many tickets this call classified.
    """
    with session_scope() as session:
        tickets = [store.get_ticket(session, ticket_id) for ticket_id in ticket_ids]
        pending = [ticket for ticket in tickets if ticket.intent_model is None]
        if not pending:
            return 0
        for ticket, result in zip(
            pending, classify_texts([ticket.text for ticket in pending]), strict=True
        ):
            store.record_triage(
                session,
                ticket,
                intent=result.intent,
                confidence=result.confidence,
                is_out_of_scope=result.is_out_of_scope,
                needs_human=result.needs_human,
                model=result.model,
            )
            logger.info(
                "ticket triaged ticket_id=%s intent=%s confidence=%s human=%s",
                ticket.id,
                result.intent,
                result.confidence,
                result.needs_human,
            )
        return len(pending)


def retrieve_tickets(ticket_ids: Sequence[int]) -> int:
    """Retrieve passages for the tickets that have none yet.

    Returns:
        How many tickets this call stored passages for.
    """
    settings = get_settings().support
    try:
        index: KnowledgeIndex | None = load_knowledge_index()
    except KnowledgeBaseError as exc:
        # Drafting still works without passages, and the ticket shows that none were found.
        logger.warning("retrieval has no knowledge base, tickets get no passages: %s", exc)
        index = None
    done = 0
    with session_scope() as session:
        for ticket_id in ticket_ids:
            ticket = store.get_ticket(session, ticket_id)
            if ticket.status not in ("new", "triaged"):
                continue
            passages = (
                index.search(
                    session,
                    ticket.text,
                    intent=ticket.intent,
                    k_articles=settings.top_k_articles,
                    k_tickets=settings.top_k_tickets,
                )
                if index is not None
                else []
            )
            if store.save_passages(session, ticket, passages):
                done += 1
                logger.info("ticket retrieved ticket_id=%s passages=%d", ticket.id, len(passages))
    return done


def draft_tickets(ticket_ids: Sequence[int]) -> int:
    """Draft replies for the tickets that have no draft yet, in one batch.

    Returns:
        How many drafts this call stored.
    """
    with session_scope() as session:
        pending = [
            ticket
            for ticket in (store.get_ticket(session, ticket_id) for ticket_id in ticket_ids)
            if store.latest_draft(session, ticket.id) is None
        ]
        inputs = [_draft_input(session, ticket) for ticket in pending]
    if not pending:
        return 0
    results = draft_replies(inputs)
    stored = 0
    with session_scope() as session:
        for ticket, result in zip(pending, results, strict=True):
            stored += _store_draft(session, ticket.id, result)
    return stored


def _draft_input(
    session: Session, ticket: Ticket
) -> tuple[str, str | None, list[store.PassageRecord]]:
    passages = [
        store.PassageRecord(
            rank=row.rank,
            kind=row.kind,
            source_id=row.source_id,
            score=row.score,
            text=row.text,
            intent=row.intent,
        )
        for row in store.get_passages(session, ticket.id)
    ]
    return ticket.text, ticket.intent, passages


def _store_draft(session: Session, ticket_id: int, result: DraftResult) -> int:
    ticket = store.get_ticket(session, ticket_id)
    draft = _save_result(session, ticket, revision=1, result=result)
    if draft is None:
        return 0
    logger.info(
        "ticket drafted ticket_id=%s kind=%s tokens=%d", ticket_id, result.kind, result.n_new_tokens
    )
    return 1


def _save_result(
    session: Session, ticket: Ticket, *, revision: int, result: DraftResult
) -> Draft | None:
    return store.save_draft(
        session,
        ticket,
        revision=revision,
        text=result.text,
        kind=result.kind,
        model=result.model,
        citations=result.citations,
        grounding=result.grounding,
        fallback_reason=result.fallback_reason,
        n_new_tokens=result.n_new_tokens,
        finished=result.finished,
        seconds=result.seconds,
        details=result.details,
    )


def save_streamed_draft(ticket_id: int, result: DraftResult) -> int | None:
    """Store a draft written while an agent watched, as the ticket's next revision.

    Returns:
        The new draft's id, or ``None`` when the ticket no longer exists.

    Raises:
        TicketAnsweredError: If the ticket was answered or closed while the
            draft was written; nothing is stored then.
    """
    # Two agents may stream the same ticket at once; the loser of a revision race
    # takes the next number instead of failing.
    for _attempt in range(3):
        with session_scope() as session:
            try:
                ticket = store.get_ticket(session, ticket_id)
            except TicketNotFoundError:
                return None
            if ticket.status in ANSWERED_STATUSES:
                raise TicketAnsweredError(
                    f"Ticket {ticket_id!r} was {ticket.status} while the draft was written; "
                    "its reply is sent, so the draft was not stored."
                )
            draft = _save_result(
                session,
                ticket,
                revision=store.count_drafts(session, ticket_id) + 1,
                result=result,
            )
            if draft is not None:
                logger.info(
                    "ticket redrafted ticket_id=%s revision=%s kind=%s",
                    ticket_id,
                    draft.revision,
                    draft.kind,
                )
                return draft.id
    raise RuntimeError(f"could not store a new draft revision for ticket {ticket_id!r}")


def process_tickets(ticket_ids: Sequence[int]) -> None:
    """Run triage, retrieval and drafting in this process, each step in one batch."""
    triage_tickets(ticket_ids)
    retrieve_tickets(ticket_ids)
    draft_tickets(ticket_ids)
