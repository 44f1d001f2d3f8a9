"""Demo stage: the sentiment monitor on PhraseBank and a slice of the StockNet stream."""

from __future__ import annotations

import datetime as dt
import time

from pydantic import ValidationError
from rich.progress import Progress
from sqlalchemy import func, select

from pipelines.demo.context import (
    DemoContext,
    classifier_figures,
    load_demo_splits,
    train_demo_classifier,
)
from pipelines.demo.mail import count_messages, local_mail_sink
from pipelines.demo.summary import Figure, StageReport
from services.sentiment.gazetteer import load_default_gazetteer
from services.sentiment.models import SentimentAlert
from services.sentiment.monitor import run_replayed_pass
from services.sentiment.pipeline import score_and_store
from services.sentiment.replay import iter_stocknet_items
from services.sentiment.rules import RuleSet, load_rules
from services.sentiment.schemas import ItemCreate
from services.sentiment.scoring import load_sentiment_scorer
from services.sentiment.timeutil import parse_granularity
from shared.notify.outbox import deliver_due_messages
from shared.settings import get_settings
from shared.storage import session_scope

__all__ = ["run_sentiment_stage"]

# Items scored and stored per transaction.
SCORE_BATCH = 256


def run_sentiment_stage(context: DemoContext) -> StageReport:
    """Train the sentiment model, replay tweets through scoring and alerting, mail the alerts."""
    started = time.perf_counter()
    settings = get_settings()
    console = context.console
    report = StageReport(name="sentiment")
    splits = load_demo_splits(context, "phrasebank")

    console.print("Training the sentiment classifier on the PhraseBank training split.")
    result = train_demo_classifier(
        context, splits, name=settings.sentiment.model, dataset="phrasebank"
    )
    report.figures += classifier_figures(
        context,
        result,
        label="sentiment",
        test_split="PhraseBank test",
        benchmark_result="sentiment",
        benchmark_row="quality/phrasebank",
    )
    if context.stream_items:
        report.figures += _replay_stream(context)
    report.seconds = time.perf_counter() - started
    return report


def _replay_stream(context: DemoContext) -> list[Figure]:
    console = context.console
    raw_items = list(iter_stocknet_items(context.data_dir, limit=context.stream_items))
    items, invalid = [], 0
    for raw in raw_items:
        try:
            items.append(ItemCreate.model_validate(raw))
        except ValidationError as exc:
            invalid += 1
            console.print(f"item {raw.get('id')!r} skipped: {exc.errors()[0]['msg']}", markup=False)
    console.print(
        f"Replaying {len(items)} StockNet tweets in published order: scoring, per-entity "
        "buckets and alert rules, with alert e-mails to a local mail sink.",
        markup=False,
    )
    mail_dir = context.output_dir / "mail"
    rules = load_rules()
    scorer = load_sentiment_scorer()
    gazetteer = load_default_gazetteer()
    stored = 0
    with local_mail_sink(mail_dir), Progress(console=console, transient=True) as progress:
        task = progress.add_task("score tweets", total=len(items))
        for start in range(0, len(items), SCORE_BATCH):
            batch = items[start : start + SCORE_BATCH]
            stored += len(score_and_store(batch, scorer=scorer, gazetteer=gazetteer).stored)
            progress.advance(task, len(batch))

        # Live, a pass runs every minute. Here the clock is the tweets' published
        # time, stepped to each bucket edge after a tweet, so weeks of tweets alert
        # and group their e-mails as they would have live.
        edges = _bucket_edges([item.published_at for item in items], rules)
        task = progress.add_task("alert rules", total=len(edges))
        for edge in edges:
            run_replayed_pass(rules=rules, until=edge)
            progress.advance(task)
        # E-mails are due on the wall clock, so they go out after the replay.
        deliver_due_messages()

    with session_scope() as session:
        episodes = session.scalar(select(func.count()).select_from(SentimentAlert)) or 0
        fired = (
            session.scalar(
                select(func.count())
                .select_from(SentimentAlert)
                .where(SentimentAlert.fired_at.is_not(None))
            )
            or 0
        )
    return [
        Figure("tweets replayed", len(items)),
        Figure("tweets stored (new)", stored),
        Figure("tweets refused as invalid", invalid),
        Figure("alert episodes", int(episodes)),
        Figure("alerts fired", int(fired)),
        Figure("alert e-mails in the mail sink", count_messages(mail_dir)),
    ]


def _bucket_edges(published: list[dt.datetime], rules: RuleSet) -> list[dt.datetime]:
    """Return the end of every bucket that contains a tweet, for the narrowest rule bucket."""
    width = min(parse_granularity(rule.bucket) for rule in rules.rules)
    edges = set()
    for moment in published:
        seconds = int(moment.astimezone(dt.UTC).timestamp())
        edges.add(dt.datetime.fromtimestamp(seconds - seconds % width + width, tz=dt.UTC))
    return sorted(edges)
