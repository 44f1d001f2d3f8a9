"""The agent's pages: the ticket queue, a ticket with its streamed draft, the knowledge base."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from services.support import store
from services.support.errors import (
    DraftNotFoundError,
    EmptyDraftError,
    KnowledgeBaseError,
    TicketNotFoundError,
)
from services.support.feedback import record_feedback
from services.support.kb import search_articles
from services.support.models import TICKET_STATUSES
from services.support.reveal import RevealedTicket, reveal_ticket
from services.support.schemas import MAX_ROW_ID, MAX_TICKET_CHARS, FeedbackCreate
from services.support.streaming import load_draft_request, stream_draft_events
from shared.console import ConsoleUser, is_shutting_down, render_page, require_role
from shared.errors import ConfigurationError
from shared.settings import get_settings
from shared.storage import session_scope

__all__ = ["QueueFilters", "QueueQuery", "parse_queue_filters", "router"]

logger = logging.getLogger(__name__)

agent = require_role("agent")
router = APIRouter(prefix="/support", dependencies=[Depends(agent)])
QUEUE_PAGE_SIZE = 100
TicketId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


@dataclass
class QueueFilters:
    """The queue's filter form as typed, its parsed filters, and what could not be parsed."""

    form: dict[str, str]
    filters: store.TicketFilters
    errors: list[str] = field(default_factory=list)


def _parse_flag(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def _parse_confidence(value: str, name: str, errors: list[str]) -> float | None:
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        errors.append(name)
        return None
    return number


def parse_queue_filters(form: dict[str, str]) -> QueueFilters:
    """Turn the queue's query string into filters; invalid values are named, not fatal."""
    errors: list[str] = []
    status_value = form.get("status", "")
    if status_value and status_value not in TICKET_STATUSES:
        errors.append("status")
        status_value = ""
    filters = store.TicketFilters(
        status=status_value or None,
        intent=form.get("intent", "").strip() or None,
        is_out_of_scope=_parse_flag(form.get("out_of_scope", "")),
        needs_human=_parse_flag(form.get("needs_human", "")),
        min_confidence=_parse_confidence(form.get("min_confidence", ""), "min_confidence", errors),
        max_confidence=_parse_confidence(form.get("max_confidence", ""), "max_confidence", errors),
    )
    return QueueFilters(form=form, filters=filters, errors=errors)


class QueueQuery(BaseModel):
    """The queue's filter form as sent in the query string, before it is parsed.

    The queue page and its row refresh share it, so both accept the same filters.
    """

    status: str = Field(default="", max_length=16)
    intent: str = Field(default="", max_length=200)
    out_of_scope: str = Field(default="", max_length=200)
    needs_human: str = Field(default="", max_length=200)
    min_confidence: str = Field(default="", max_length=200)
    max_confidence: str = Field(default="", max_length=200)


def _queue_context(query: QueueQuery) -> dict[str, Any]:
    parsed = parse_queue_filters(query.model_dump())
    with session_scope() as session:
        tickets = store.list_tickets(session, parsed.filters, limit=QUEUE_PAGE_SIZE)
        total = store.count_tickets(session, parsed.filters)
        intents = store.list_intents(session)
    return {
        "tickets": tickets,
        "total": total,
        "intents": intents,
        "statuses": TICKET_STATUSES,
        "form": parsed.form,
        "filter_errors": parsed.errors,
        "query": urlencode({key: value for key, value in parsed.form.items() if value}),
        "refresh_s": get_settings().console.queue_refresh_s,
    }


@router.get("", response_class=HTMLResponse)
def queue_page(request: Request, query: Annotated[QueueQuery, Query()]) -> HTMLResponse:
    """Show the ticket queue with its filters."""
    return render_page(request, "support/queue.html", _queue_context(query))


@router.get("/queue/rows", response_class=HTMLResponse)
def queue_rows(request: Request, query: Annotated[QueueQuery, Query()]) -> HTMLResponse:
    """Return the queue's table rows, which the queue page reloads every few seconds."""
    return render_page(request, "support/_queue_rows.html", _queue_context(query))


def _ticket_context(ticket_id: int) -> dict[str, Any]:
    with session_scope() as session:
        try:
            ticket = store.get_ticket(session, ticket_id)
        except TicketNotFoundError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
        return {
            "ticket": ticket,
            "passages": store.get_passages(session, ticket_id),
            "draft": store.latest_draft(session, ticket_id),
            "feedback": store.list_ticket_feedback(session, ticket_id),
            "revealed": None,
            "error": "",
            "notice": "",
        }


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(
    request: Request, ticket_id: TicketId, notice: Annotated[str, Query(max_length=40)] = ""
) -> HTMLResponse:
    """Show a ticket: masked text, triage, passages, the draft and the feedback buttons."""
    context = _ticket_context(ticket_id)
    context["notice"] = notice
    return render_page(request, "support/ticket.html", context)


@router.post("/tickets/{ticket_id}/reveal", response_class=HTMLResponse)
def reveal_page(
    request: Request, ticket_id: TicketId, user: Annotated[ConsoleUser, Depends(agent)]
) -> HTMLResponse:
    """Show the ticket with its personal data restored; the reveal is recorded."""
    context = _ticket_context(ticket_id)
    try:
        revealed: RevealedTicket = reveal_ticket(ticket_id, agent=user.username)
    except ConfigurationError as exc:
        context["error"] = str(exc)
        return render_page(request, "support/ticket.html", context, status_code=409)
    context["revealed"] = revealed
    response = render_page(request, "support/ticket.html", context)
    # The unmasked text must not linger in a shared cache or the back-button cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/tickets/{ticket_id}/draft/stream")
def stream_draft(
    request: Request, ticket_id: TicketId, user: Annotated[ConsoleUser, Depends(agent)]
) -> Response:
    """Write a new draft and send it piece by piece as server-sent events.

    An answered or closed ticket gets no new draft: the stream sends its reply once.
    """
    try:
        draft_request = load_draft_request(ticket_id)
    except TicketNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None

    async def should_stop() -> bool:
        return is_shutting_down(request) or await request.is_disconnected()

    if draft_request.is_answered:
        logger.info("streamed draft not written, ticket answered ticket_id=%s", ticket_id)
    else:
        logger.info("streamed draft started ticket_id=%s user_id=%s", ticket_id, user.id)
    return StreamingResponse(
        stream_draft_events(draft_request, should_stop=should_stop),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/tickets/{ticket_id}/feedback", response_class=HTMLResponse)
def feedback_form(
    request: Request,
    ticket_id: TicketId,
    user: Annotated[ConsoleUser, Depends(agent)],
    action: Annotated[str, Form(max_length=16)],
    draft_id: Annotated[int | None, Form(ge=1, le=MAX_ROW_ID)] = None,
    final_text: Annotated[str, Form(max_length=MAX_TICKET_CHARS)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    corrected_intent: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Store the agent's verdict on the latest draft and show the ticket again."""
    context = _ticket_context(ticket_id)
    draft = context["draft"]
    if draft is None or (draft_id is not None and draft.id != draft_id):
        context["error"] = "stale-draft"
        return render_page(request, "support/ticket.html", context, status_code=409)
    try:
        feedback = FeedbackCreate(
            action=action,  # type: ignore[arg-type]
            final_text=final_text or None,
            reason=reason or None,
            corrected_intent=corrected_intent.strip() or None,
        )
        record_feedback(ticket_id, feedback, agent=user.username)
    except ValidationError:
        context["error"] = f"invalid-{action}" if action in ("edit", "reject") else "invalid"
        return render_page(request, "support/ticket.html", context, status_code=422)
    except EmptyDraftError:
        context["error"] = "empty-draft"
        return render_page(request, "support/ticket.html", context, status_code=422)
    except (TicketNotFoundError, DraftNotFoundError) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return RedirectResponse(
        f"/support/tickets/{ticket_id}?notice=feedback-{action}",
        status_code=status.HTTP_303_SEE_OTHER,
    )


@router.get("/kb", response_class=HTMLResponse)
def knowledge_base_page(
    request: Request,
    q: Annotated[str, Query(max_length=2000)] = "",
    intent: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """Search the knowledge base the way ticket retrieval does."""
    hits, error = [], ""
    if q.strip():
        try:
            hits = search_articles(q.strip(), intent=intent.strip() or None, k=10)
        except KnowledgeBaseError as exc:
            error = str(exc)
    return render_page(
        request, "support/kb.html", {"q": q, "intent": intent, "hits": hits, "error": error}
    )
