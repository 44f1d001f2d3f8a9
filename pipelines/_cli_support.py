"""`diptych support`: knowledge base, tickets, drafts and feedback from the terminal."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import Progress
from rich.table import Table

from pipelines._console import fail, make_console
from shared.errors import DiptychError
from shared.settings import get_settings
from shared.storage import ensure_database_ready

if TYPE_CHECKING:
    from services.support.store import ArticleRecord

support_app = typer.Typer(
    help="Support service: knowledge base, tickets, drafted replies, feedback.",
    no_args_is_help=True,
)
console = make_console()


@support_app.command("import-kb")
def import_kb_command(
    dataset: str = typer.Option(
        None, help="Build articles from a named data set: `bitext` (its agent responses)."
    ),
    file: Path = typer.Option(None, help="A Markdown, CSV or JSONL file of articles."),
    split: str = typer.Option(
        "all",
        help="With --dataset: `all` rows, or only the `train` split (the one the intent "
        "model trains on, so the test split stays unseen).",
    ),
    rebuild: bool = typer.Option(False, help="Rebuild the whole search index afterwards."),
) -> None:
    """Import knowledge-base articles and index them."""
    from services.support.kb import import_articles

    if (dataset is None) == (file is None):
        raise fail("pass exactly one of --dataset and --file.")
    if dataset is not None and dataset != "bitext":
        raise fail(f"--dataset {dataset!r} has no replies to import; the one data set is bitext.")
    try:
        ensure_database_ready()
        records = _read_bitext_articles(split) if dataset else _read_file_articles(file)
        result = import_articles(records, rebuild=rebuild)
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(
        f"Articles added: {result.added}, duplicates skipped: {result.skipped}, "
        f"indexed: {result.indexed}.",
        markup=False,
    )


def _read_bitext_articles(split: str) -> list[ArticleRecord]:
    from pipelines.datasets import load_dataset_splits, read_bitext, resolve_data_dir
    from services.support.knowledge import build_bitext_articles

    if split not in ("all", "train"):
        raise DiptychError(f"`--split` must be 'all' or 'train', got {split!r}.")
    data_dir = resolve_data_dir()
    if split == "all":
        examples = read_bitext(data_dir)
    else:
        examples = load_dataset_splits("bitext", data_dir=data_dir, seed=get_settings().seed).train
    return build_bitext_articles(examples)


def _read_file_articles(path: Path) -> list[ArticleRecord]:
    from services.support.knowledge import read_article_file

    return read_article_file(path)


@support_app.command("build-index")
def build_index_command() -> None:
    """Rebuild the article and resolved-ticket search indexes from the database."""
    from services.support.retrieval import build_knowledge_index
    from shared.storage import session_scope

    try:
        ensure_database_ready()
        with session_scope() as session:
            index = build_knowledge_index(session)
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(
        f"Indexed {len(index.articles)} articles and {len(index.tickets)} answered tickets "
        f"in {index.folder}.",
        markup=False,
    )


@support_app.command("submit")
def submit_command(
    text: str = typer.Argument(..., help="The customer's message."),
    subject: str = typer.Option("", help="Subject line."),
    external_id: str = typer.Option(None, help="Your id for the ticket."),
) -> None:
    """Store a ticket and run (or queue) triage, retrieval and drafting."""
    from services.support.dispatch import enqueue_tickets
    from services.support.pipeline import store_ticket
    from services.support.schemas import MAX_TICKET_CHARS, TicketCreate

    if len(text) > MAX_TICKET_CHARS:
        raise fail(
            f"the message has {len(text)} characters, more than the limit of "
            f"{MAX_TICKET_CHARS}; shorten it or split it into several tickets."
        )
    try:
        ensure_database_ready()
        request = TicketCreate(text=text, subject=subject, external_id=external_id, channel="cli")
        stored = store_ticket(request)
        if stored.created:
            enqueue_tickets([stored.ticket_id])
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    console.print(f"Ticket {stored.ticket_id} stored (new: {stored.created}).", markup=False)
    _print_ticket(stored.ticket_id)


@support_app.command("import-tickets")
def import_tickets_command(
    path: Path = typer.Argument(..., help="CSV or JSONL file of tickets."),
    text_column: str = typer.Option("text", help="Column or key with the customer's message."),
    id_column: str = typer.Option(None, help="Column or key with your ticket id (optional)."),
    batch_size: int = typer.Option(32, min=1, help="Tickets per pipeline batch."),
) -> None:
    """Import tickets from a file; bad rows are reported and skipped, the rest processed."""
    from pipelines.support_tickets import import_ticket_file

    try:
        ensure_database_ready()
        report = import_ticket_file(
            path, text_column=text_column, id_column=id_column, batch_size=batch_size
        )
    except DiptychError as exc:
        raise fail(exc) from None
    for line, error in report.errors[:20]:
        console.print(f"line {line}: {error}", markup=False, style="yellow")
    console.print(
        f"Tickets stored: {report.created}, already known: {report.known}, "
        f"refused: {len(report.errors)}.",
        markup=False,
    )


@support_app.command("process")
def process_command(
    batch_size: int = typer.Option(32, min=1, help="Tickets per pipeline batch."),
) -> None:
    """Run the pipeline in this process for every ticket not yet drafted."""
    from pipelines.support_tickets import process_pending

    try:
        ensure_database_ready()
        with Progress(console=console, transient=True) as progress:
            count = process_pending(batch_size=batch_size, progress=progress)
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(f"Processed {count} tickets.", markup=False)


@support_app.command("show")
def show_command(ticket_id: int = typer.Argument(..., help="Ticket id.")) -> None:
    """Print a ticket's triage, passages and draft (customer text masked)."""
    try:
        ensure_database_ready()
        _print_ticket(ticket_id)
    except DiptychError as exc:
        raise fail(exc) from None


@support_app.command("ask")
def ask_command(
    text: str = typer.Argument(..., help="A customer's message."),
    stream: bool = typer.Option(True, help="Print the draft as it is written."),
) -> None:
    """Triage a message, show the passages found and draft a reply, storing nothing."""
    from pipelines.support_tickets import ask

    try:
        ensure_database_ready()
        answer = ask(text, on_piece=_write_piece if stream else None)
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    if stream:
        sys.stdout.write("\n")
    triage = answer.triage
    confidence = f"{triage.confidence:.3f}" if triage.confidence is not None else "-"
    console.print(
        f"Intent: {triage.intent or 'out of scope'} (top {triage.top_intent}, "
        f"confidence {confidence}, human queue: {triage.needs_human})",
        markup=False,
    )
    _print_passages(answer.passages)
    draft = answer.draft
    console.rule(f"Draft ({draft.kind}, grounding {draft.grounding or 0:.2f})")
    console.print(draft.text, markup=False, highlight=False)
    if draft.fallback_reason:
        console.print(f"Fallback: {draft.fallback_reason}", markup=False, style="yellow")


def _write_piece(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


@support_app.command("export-feedback")
def export_feedback_command(
    output: Path = typer.Option(Path("feedback"), help="Folder for the JSONL files."),
) -> None:
    """Write agent feedback as training data (intents.jsonl, replies.jsonl)."""
    from services.support.feedback import export_feedback

    try:
        ensure_database_ready()
        result = export_feedback(output)
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(
        f"Wrote {result.n_intents} intents to {result.intents_path} and {result.n_replies} "
        f"replies to {result.replies_path}.\nTrain with: diptych train classifier "
        f"--train-file {result.intents_path}   or   diptych train drafter --train-file "
        f"{result.replies_path}",
        markup=False,
    )


def _print_ticket(ticket_id: int) -> None:
    from services.support import store
    from shared.storage import session_scope

    with session_scope() as session:
        ticket = store.get_ticket(session, ticket_id)
        confidence = f"{ticket.confidence:.3f}" if ticket.confidence is not None else "-"
        console.print(
            f"Ticket {ticket.id} [{ticket.status}] intent={ticket.intent or '-'} "
            f"confidence={confidence} human={ticket.needs_human}",
            markup=False,
        )
        console.print(ticket.text, markup=False, highlight=False)
        _print_passages(store.get_passages(session, ticket.id))
        draft = store.latest_draft(session, ticket.id)
        if draft is not None:
            console.rule(f"Draft ({draft.kind})")
            console.print(draft.text, markup=False, highlight=False)


def _print_passages(passages: Sequence[Any]) -> None:
    if not passages:
        return
    table = Table("rank", "kind", "id", "score", "intent", "text")
    for passage in passages:
        snippet = passage.text.replace("\n", " ")
        table.add_row(
            str(passage.rank),
            passage.kind,
            str(passage.source_id),
            f"{passage.score:.3f}",
            passage.intent or "-",
            snippet[:90] + ("…" if len(snippet) > 90 else ""),
        )
    console.print(table)
