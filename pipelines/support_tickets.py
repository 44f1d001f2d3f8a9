"""Support jobs run from the CLI: ticket file import, pending-ticket processing, ask."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from rich.progress import Progress
from sqlalchemy import select

from services.support.cleaning import TicketTextError, clean_text
from services.support.dispatch import enqueue_tickets
from services.support.drafting import DraftResult, stream_reply
from services.support.models import Draft, Ticket
from services.support.pipeline import process_tickets, store_ticket
from services.support.privacy import mask_pii
from services.support.retrieval import load_knowledge_index
from services.support.schemas import MAX_TICKET_CHARS, TicketCreate
from services.support.store import PassageRecord
from services.support.triage import TriageResult, classify_texts
from shared.errors import DataError
from shared.settings import get_settings
from shared.storage import session_scope
from shared.worker import is_distributed

__all__ = ["Answer", "ImportReport", "ask", "import_ticket_file", "process_pending"]

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    """Outcome of a ticket file import."""

    created: int = 0
    known: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def import_ticket_file(
    path: Path, *, text_column: str = "text", id_column: str | None = None, batch_size: int = 32
) -> ImportReport:
    """Store each row of a CSV or JSONL file as a ticket, then process or queue them.

    A row that cannot become a ticket is reported with its line number and skipped.

    Raises:
        DataError: If the file is missing, of another type, or lacks `text_column`.
    """
    report = ImportReport()
    created_ids: list[int] = []
    for line, row in _iter_rows(path, text_column=text_column):
        if "__error__" in row:
            report.errors.append((line, str(row["__error__"])))
            continue
        if text_column not in row:
            report.errors.append((line, f"no {text_column!r} key; pass --text-column"))
            continue
        external_id = str(row.get(id_column) or "").strip() or None if id_column else None
        try:
            request = TicketCreate(
                text=str(row.get(text_column) or ""),
                subject=str(row.get("subject") or "")[:500],
                external_id=external_id,
                channel="import",
            )
            stored = store_ticket(request)
        except (TicketTextError, ValidationError) as exc:
            report.errors.append((line, _short_error(exc)))
            continue
        if stored.created:
            report.created += 1
            created_ids.append(stored.ticket_id)
        else:
            report.known += 1
    for start in range(0, len(created_ids), batch_size):
        enqueue_tickets(created_ids[start : start + batch_size])
    return report


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _iter_rows(path: Path, *, text_column: str) -> Iterator[tuple[int, dict[str, object]]]:
    if not path.is_file():
        raise DataError(f"`path` {str(path)!r} is not a file; pass a CSV or JSONL file.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if text_column not in (reader.fieldnames or []):
                raise DataError(
                    f"{str(path)!r} has no column {text_column!r} (columns: "
                    f"{reader.fieldnames!r}); pass --text-column."
                )
            for row in reader:
                yield reader.line_num, dict(row)
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line_number, line in enumerate(handle, start=1):
                if line.strip():
                    yield line_number, _json_row(line, line_number)
    else:
        raise DataError(f"`path` {str(path)!r} has suffix {suffix!r}; use .csv or .jsonl.")


def _json_row(line: str, line_number: int) -> dict[str, object]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return {"__error__": f"line {line_number} is not valid JSON"}
    return row if isinstance(row, dict) else {"__error__": "not a JSON object"}


def process_pending(*, batch_size: int = 32, progress: Progress | None = None) -> int:
    """Run the pipeline for every ticket without a draft, in batches.

    Returns:
        How many tickets were processed (or queued, with a broker configured).
    """
    with session_scope() as session:
        drafted = select(Draft.ticket_id)
        ids = list(session.scalars(select(Ticket.id).where(Ticket.id.not_in(drafted))))
    if is_distributed():
        enqueue_tickets(ids)
        return len(ids)
    task = progress.add_task("Tickets", total=len(ids)) if progress else None
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        process_tickets(batch)
        if progress is not None and task is not None:
            progress.advance(task, len(batch))
    return len(ids)


@dataclass(frozen=True)
class Answer:
    """The triage result, passages and draft that `ask` produced for one message."""

    triage: TriageResult
    passages: list[PassageRecord]
    draft: DraftResult


def ask(text: str, *, on_piece: Callable[[str], None] | None = None) -> Answer:
    """Triage, retrieve and draft for a message without storing anything.

    Raises:
        TicketTextError: If the message is empty after cleaning or too long.
        KnowledgeBaseError: If no knowledge-base index exists yet.
    """
    masked = mask_pii(clean_text(text, max_chars=MAX_TICKET_CHARS)).text
    triage = classify_texts([masked])[0]
    settings = get_settings().support
    with session_scope() as session:
        passages = load_knowledge_index().search(
            session,
            masked,
            intent=triage.intent,
            k_articles=settings.top_k_articles,
            k_tickets=settings.top_k_tickets,
        )
    draft = stream_reply(masked, triage.intent, passages, on_piece=on_piece or (lambda _: None))
    return Answer(triage=triage, passages=passages, draft=draft)
