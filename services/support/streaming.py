"""A draft written while the agent watches, sent as server-sent events.

`stream_reply` runs in a thread of its own and calls back with each text
piece. The pieces reach the event loop through an asyncio queue, and the
response's async generator sends them. Events (WHATWG HTML, "Server-sent
events"):

- ``piece``: ``{"text": ...}`` for each piece the drafter writes;
- ``done``: the judged draft as stored (a fallback replaces the streamed text);
- ``answered``: the reply sent, when the ticket is answered or closed. Such a
  ticket gets no new draft, so this is the only event;
- ``failed``: ``{"message": ...}`` when drafting could not run.

Between events the generator calls `should_stop`. Once it returns true (the
client left, the server is shutting down), the drafter stops after its current
token, the stream ends without a ``done`` event, and no draft is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.support import store
from services.support.drafting import stream_reply
from services.support.errors import DraftCancelledError, TicketAnsweredError
from services.support.models import ANSWERED_STATUSES
from services.support.pipeline import save_streamed_draft
from shared.storage import session_scope

__all__ = ["DraftRequest", "format_event", "load_draft_request", "stream_draft_events"]

logger = logging.getLogger(__name__)

# Seconds between keep-alive comments while the drafter loads or thinks; proxies
# close event streams that stay silent for too long.
KEEPALIVE_S = 15.0
# Seconds between two `should_stop` calls while no piece arrives. Drafting ends at
# most this long, plus one token, after the client leaves or the server stops.
POLL_S = 0.25

Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class DraftRequest:
    """What the drafter reads for one ticket, and what an answered ticket already has.

    Attributes:
        ticket_id: The ticket.
        text: Its masked text.
        intent: Its intent, if triage found one.
        passages: Its retrieved passages, best first.
        status: Its status when the request was read.
        reply: The reply sent, for an answered or closed ticket.
        draft_id: Its latest draft, if any.
    """

    ticket_id: int
    text: str
    intent: str | None
    passages: tuple[store.PassageRecord, ...]
    status: str = "new"
    reply: str | None = None
    draft_id: int | None = None

    @property
    def is_answered(self) -> bool:
        """Whether the ticket's reply is sent, so it gets no new draft."""
        return self.status in ANSWERED_STATUSES


def load_draft_request(ticket_id: int) -> DraftRequest:
    """Read a ticket's masked text, intent, passages and, once answered, its reply.

    Raises:
        TicketNotFoundError: If no ticket has that id.
    """
    with session_scope() as session:
        ticket = store.get_ticket(session, ticket_id)
        passages = tuple(
            store.PassageRecord(
                rank=row.rank,
                kind=row.kind,
                source_id=row.source_id,
                score=row.score,
                text=row.text,
                intent=row.intent,
            )
            for row in store.get_passages(session, ticket_id)
        )
        latest = store.latest_draft(session, ticket_id)
        return DraftRequest(
            ticket_id=ticket.id,
            text=ticket.text,
            intent=ticket.intent,
            passages=passages,
            status=ticket.status,
            reply=ticket.resolution,
            draft_id=latest.id if latest else None,
        )


def format_event(event: str, data: dict[str, Any]) -> str:
    """Encode one server-sent event; JSON keeps newlines inside the one data line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream_draft_events(
    request: DraftRequest, *, should_stop: Callable[[], Awaitable[bool]]
) -> AsyncIterator[str]:
    """Yield the events of one streamed draft, ending with ``done``, ``answered`` or ``failed``.

    Args:
        request: The ticket to draft, from `load_draft_request`.
        should_stop: Returns true once the stream is no longer wanted; drafting
            then stops and nothing is stored.
    """
    if request.is_answered:
        yield format_event("answered", _answered_data(request))
        return
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Event | None] = asyncio.Queue()
    stop = threading.Event()

    def emit(item: Event | None) -> None:
        # RuntimeError: the event loop is closed, so no one is left to read the stream.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(events.put_nowait, item)

    worker = threading.Thread(
        target=_draft, args=(request, emit, stop), name=f"draft-{request.ticket_id}", daemon=True
    )
    worker.start()
    silent_s = 0.0
    try:
        while not await should_stop():
            try:
                item = await asyncio.wait_for(events.get(), timeout=POLL_S)
            except TimeoutError:
                silent_s += POLL_S
                if silent_s >= KEEPALIVE_S:
                    silent_s = 0.0
                    yield ": keep-alive\n\n"
                continue
            if item is None:
                return
            silent_s = 0.0
            yield format_event(*item)
        logger.info("streamed draft no longer wanted ticket_id=%s", request.ticket_id)
    finally:
        # Reached at the end of the draft, on a stop, and when the response is cancelled.
        stop.set()


def _answered_data(request: DraftRequest) -> dict[str, Any]:
    return {"draft_id": request.draft_id, "text": request.reply or "", "status": request.status}


def _draft(
    request: DraftRequest, emit: Callable[[Event | None], None], stop: threading.Event
) -> None:
    try:
        result = stream_reply(
            request.text,
            request.intent,
            request.passages,
            on_piece=lambda piece: emit(("piece", {"text": piece})),
            stop=stop,
        )
        draft_id = save_streamed_draft(request.ticket_id, result)
        emit(
            (
                "done",
                {
                    "draft_id": draft_id,
                    "text": result.text,
                    "kind": result.kind,
                    "model": result.model,
                    "grounding": result.grounding,
                    "citations": result.citations,
                    "fallback_reason": result.fallback_reason,
                },
            )
        )
    except DraftCancelledError as exc:
        logger.info("streamed draft stopped ticket_id=%s: %s", request.ticket_id, exc)
    except TicketAnsweredError:
        logger.info("streamed draft dropped, ticket answered ticket_id=%s", request.ticket_id)
        emit(("answered", _answered_data(load_draft_request(request.ticket_id))))
    except Exception as exc:  # the stream reports the failure; the log keeps the trace
        logger.exception("streamed draft failed ticket_id=%s", request.ticket_id)
        emit(("failed", {"message": f"{type(exc).__name__}: {exc}"}))
    finally:
        emit(None)
