"""A draft written while the agent watches, sent as server-sent events.

`stream_reply` calls back with each text piece from the drafter's thread; a
queue hands the pieces to the response generator, which Starlette iterates in
its thread pool. Events (WHATWG HTML, "Server-sent events"):

- ``piece``: ``{"text": ...}`` for each piece the drafter writes;
- ``done``: the judged draft as stored (a fallback replaces the streamed text);
- ``failed``: ``{"message": ...}`` when drafting could not run.

The draft is stored even when the browser leaves before the end.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from services.support import store
from services.support.drafting import stream_reply
from services.support.pipeline import save_streamed_draft
from shared.storage import session_scope

__all__ = ["DraftRequest", "format_event", "load_draft_request", "stream_draft_events"]

logger = logging.getLogger(__name__)

# Seconds between keep-alive comments while the drafter loads or thinks; proxies
# close event streams that stay silent for too long.
KEEPALIVE_S = 15.0


@dataclass(frozen=True)
class DraftRequest:
    """The masked text, intent and passages the drafter reads for one ticket."""

    ticket_id: int
    text: str
    intent: str | None
    passages: tuple[store.PassageRecord, ...]


def load_draft_request(ticket_id: int) -> DraftRequest:
    """Read a ticket's masked text, intent and passages.

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
        return DraftRequest(ticket.id, ticket.text, ticket.intent, passages)


def format_event(event: str, data: dict[str, Any]) -> str:
    """Encode one server-sent event; JSON keeps newlines inside the one data line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def stream_draft_events(request: DraftRequest) -> Iterator[str]:
    """Yield the events of one streamed draft, ending with ``done`` or ``failed``."""
    pieces: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
    worker = threading.Thread(
        target=_draft, args=(request, pieces), name=f"draft-{request.ticket_id}", daemon=True
    )
    worker.start()
    while True:
        try:
            item = pieces.get(timeout=KEEPALIVE_S)
        except queue.Empty:
            yield ": keep-alive\n\n"
            continue
        if item is None:
            return
        yield format_event(*item)


def _draft(request: DraftRequest, pieces: queue.Queue[tuple[str, dict[str, Any]] | None]) -> None:
    try:
        result = stream_reply(
            request.text,
            request.intent,
            request.passages,
            on_piece=lambda piece: pieces.put(("piece", {"text": piece})),
        )
        draft_id = save_streamed_draft(request.ticket_id, result)
        pieces.put(
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
    except Exception as exc:  # the stream reports the failure; the log keeps the trace
        logger.exception("streamed draft failed ticket_id=%s", request.ticket_id)
        pieces.put(("failed", {"message": f"{type(exc).__name__}: {exc}"}))
    finally:
        pieces.put(None)
