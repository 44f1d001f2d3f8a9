"""Demo stage: the support bot on Bitext, from intent model to drafted replies."""

from __future__ import annotations

import random
import time

from sqlalchemy import func, select

from pipelines.demo.context import (
    DemoContext,
    classifier_figures,
    load_demo_splits,
    train_demo_classifier,
)
from pipelines.demo.summary import BenchmarkFigure, Figure, StageReport
from services.support.evaluation import evaluate_retrieval, score_drafts
from services.support.kb import import_articles
from services.support.knowledge import build_bitext_articles
from services.support.models import Draft, Ticket
from services.support.pipeline import process_tickets, store_ticket
from services.support.privacy import mask_pii
from services.support.retrieval import load_knowledge_index
from services.support.schemas import TicketCreate
from services.support.triage import classify_texts
from shared.data import LabelledText
from shared.settings import get_settings
from shared.storage import session_scope

__all__ = ["run_support_stage"]

# Prefix of the external ids of the demo's tickets, so a second run finds them.
TICKET_ID_PREFIX = "demo-bitext-"


def run_support_stage(context: DemoContext) -> StageReport:
    """Train the intent model, build the knowledge base and draft replies to held-out tickets."""
    started = time.perf_counter()
    settings = get_settings()
    console = context.console
    report = StageReport(name="support")
    splits = load_demo_splits(context, "bitext")

    console.print("Training the intent classifier on the Bitext training split.", markup=False)
    result = train_demo_classifier(
        context, splits, name=settings.support.intent_model, dataset="bitext"
    )
    report.figures += classifier_figures(
        context,
        result,
        label="intent",
        test_split="Bitext test",
        benchmark_result="support",
        benchmark_row="intent-head",
    )

    console.print("Building the knowledge base from the training split's replies.", markup=False)
    # A second run finds its articles stored and indexed, and adds none.
    import_articles(build_bitext_articles(splits.train))
    index = load_knowledge_index()
    texts = [mask_pii(example.text).text for example in splits.test]
    predicted = [triage.intent for triage in classify_texts(texts)]
    scores = evaluate_retrieval(
        index, texts, [example.label for example in splits.test], predicted_intents=predicted
    )
    report.figures += [
        Figure("knowledge-base articles", len(index.articles)),
        Figure(
            "retrieval recall@5",
            round(scores.recall, 4),
            BenchmarkFigure("support", "retrieval-intent-boost", "recall_at_5"),
        ),
        Figure(
            "retrieval MRR@5",
            round(scores.mrr, 4),
            BenchmarkFigure("support", "retrieval-intent-boost", "mrr_at_5"),
        ),
    ]

    if context.tickets:
        report.figures += _draft_held_out_tickets(context, list(splits.test))
    report.seconds = time.perf_counter() - started
    return report


def _draft_held_out_tickets(context: DemoContext, test: list[LabelledText]) -> list[Figure]:
    settings = get_settings()
    chosen = random.Random(settings.seed).sample(test, min(context.tickets, len(test)))
    context.console.print(
        f"Triaging and drafting replies to {len(chosen)} held-out tickets "
        "(the drafter writes on the CPU, so this is the slow step).",
        markup=False,
    )
    ids = [
        store_ticket(
            TicketCreate(
                text=example.text, external_id=f"{TICKET_ID_PREFIX}{position}", channel="import"
            )
        ).ticket_id
        for position, example in enumerate(chosen)
    ]
    # The demo runs the steps here even when a broker is configured, so its figures
    # are ready when it prints them. Tickets an earlier run drafted keep their drafts.
    pending = [ticket_id for ticket_id in ids if ticket_id not in _latest_drafts(ids)]
    if pending:
        process_tickets(pending)

    drafts = _latest_drafts(ids)
    fallbacks = sum(1 for draft in drafts.values() if draft.kind == "fallback")
    with session_scope() as session:
        to_human = session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.id.in_(ids), Ticket.needs_human.is_(True))
        )
    figures = [
        Figure("tickets drafted", len(drafts)),
        Figure("drafts replaced by the retrieved answer", fallbacks),
        Figure("tickets sent to the human queue", int(to_human or 0)),
    ]
    references = {
        ticket_id: str(example.meta["response"])
        for ticket_id, example in zip(ids, chosen, strict=True)
    }
    answered = [ticket_id for ticket_id in ids if ticket_id in drafts]
    if answered:
        similarity = score_drafts(
            [drafts[ticket_id].text for ticket_id in answered],
            [references[ticket_id] for ticket_id in answered],
        )
        figures.append(
            Figure("draft cosine to the reference reply", round(similarity.mean_cosine, 4))
        )
    return figures


def _latest_drafts(ticket_ids: list[int]) -> dict[int, Draft]:
    with session_scope() as session:
        rows = session.scalars(
            select(Draft).where(Draft.ticket_id.in_(ticket_ids)).order_by(Draft.revision)
        ).all()
        latest = {row.ticket_id: row for row in rows}
        session.expunge_all()
    return latest
