"""Agent feedback on drafts, and its export as training data.

Accepted and edited replies answer their ticket and join the resolved-ticket
index, so the next similar ticket retrieves them. The export writes two JSONL
files that `diptych train` reads: corrected or confirmed intents for the
classifier, and ticket-reply pairs for the drafter. Text is masked again on
the way out, because an agent may have typed a customer's details into a reply.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from services.support import store
from services.support.errors import DraftNotFoundError, EmptyDraftError
from services.support.kb import update_knowledge_index
from services.support.models import Ticket
from services.support.privacy import mask_pii
from services.support.schemas import FeedbackCreate
from shared.storage import session_scope

__all__ = ["FeedbackExport", "export_feedback", "record_feedback"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackExport:
    """Files written by `export_feedback` and their row counts."""

    intents_path: Path
    replies_path: Path
    n_intents: int
    n_replies: int


def record_feedback(ticket_id: int, request: FeedbackCreate, *, agent: str) -> int:
    """Store an agent's verdict on the ticket's latest draft.

    Args:
        ticket_id: The ticket.
        request: The verdict.
        agent: User name of the signed-in agent (or API token holder) who gave it.

    Returns:
        The feedback row's id.

    Raises:
        TicketNotFoundError: If the ticket does not exist.
        DraftNotFoundError: If the ticket has no draft yet.
        EmptyDraftError: If `request` accepts a draft without text.
    """
    with session_scope() as session:
        ticket = store.get_ticket(session, ticket_id)
        draft = store.latest_draft(session, ticket.id)
        if draft is None:
            raise DraftNotFoundError(
                f"Ticket {ticket_id!r} has no draft yet; wait until it is drafted."
            )
        if request.action == "accept" and not draft.text.strip():
            raise EmptyDraftError(
                f"Draft {draft.id!r} of ticket {ticket_id!r} has no text (kind {draft.kind!r}); "
                "write the reply and send it with action 'edit'."
            )
        final_text = mask_pii(request.final_text).text if request.final_text else None
        feedback = store.add_feedback(
            session,
            draft,
            action=request.action,
            final_text=final_text,
            reason=request.reason,
            corrected_intent=request.corrected_intent,
            agent=agent,
        )
        feedback_id = feedback.id
        answered = ticket if ticket.resolution else None
        if answered is not None:
            _index_answered(answered)
    logger.info(
        "feedback stored ticket_id=%s draft_id=%s action=%s agent=%s",
        ticket_id,
        draft.id,
        request.action,
        agent,
    )
    return feedback_id


def _index_answered(ticket: Ticket) -> None:
    with update_knowledge_index() as index:
        if index is not None:
            index.add_tickets([ticket])


def export_feedback(output_dir: Path) -> FeedbackExport:
    """Write `intents.jsonl` and `replies.jsonl` under `output_dir`.

    `intents.jsonl` has ``{"text", "label"}`` rows: the corrected intent where
    the agent gave one, otherwise the predicted intent of an accepted or edited
    draft. `replies.jsonl` has ``{"text", "intent", "response"}`` rows for every
    accepted or edited reply.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    intents: list[dict[str, str]] = []
    replies: list[dict[str, str]] = []
    with session_scope() as session:
        for feedback, draft, ticket in store.list_feedback(session):
            text = mask_pii(ticket.text).text
            label = feedback.corrected_intent or (
                ticket.intent if feedback.action in ("accept", "edit") else None
            )
            if label:
                intents.append({"text": text, "label": label})
            if feedback.action in ("accept", "edit"):
                response = feedback.final_text if feedback.action == "edit" else draft.text
                replies.append(
                    {"text": text, "intent": label or "", "response": mask_pii(response or "").text}
                )
    intents_path = _write_jsonl(output_dir / "intents.jsonl", intents)
    replies_path = _write_jsonl(output_dir / "replies.jsonl", replies)
    logger.info("feedback exported intents=%d replies=%d", len(intents), len(replies))
    return FeedbackExport(intents_path, replies_path, len(intents), len(replies))


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
