"""`diptych sentiment`: stream consumers, replays, rule evaluation, alerts and silences."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines._console import fail, make_console
from shared.errors import DiptychError
from shared.settings import get_settings
from shared.storage import ensure_database_ready

sentiment_app = typer.Typer(
    help="Sentiment service: stream scoring, replays, alert rules, alerts and silences.",
    no_args_is_help=True,
)
console = make_console()


@sentiment_app.command("consume")
def consume_command(
    name: str = typer.Option(None, help="Consumer name in the group (default: host-pid)."),
    exit_when_idle: float = typer.Option(
        None, help="Stop after this many seconds without entries (default: run until killed)."
    ),
) -> None:
    """Score items from the Redis Stream in micro-batches until stopped."""
    from services.sentiment.gazetteer import load_default_gazetteer
    from services.sentiment.pipeline import process_entries
    from services.sentiment.scoring import load_sentiment_scorer
    from services.sentiment.stream import StreamConsumer, connect_redis

    try:
        ensure_database_ready()
        scorer = load_sentiment_scorer()
        gazetteer = load_default_gazetteer()
        client = connect_redis()
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    consumer = StreamConsumer(
        client,
        name=name or f"{socket.gethostname()}-{os.getpid()}",
        process=lambda entries: process_entries(entries, scorer=scorer, gazetteer=gazetteer),
    )
    with contextlib.suppress(KeyboardInterrupt):
        consumer.run(exit_when_idle_s=exit_when_idle)
    console.print(
        f"Batches: {consumer.batches}, stored: {consumer.stored}, "
        f"dead-lettered: {consumer.dead_lettered}.",
        markup=False,
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@sentiment_app.command("replay")
def replay_command(
    dataset: str = typer.Option("stocknet", help="Data set to replay: `stocknet`."),
    speed: float = typer.Option(
        0.0,
        help="Seconds of published time replayed per second (3600 = one hour a second); "
        "0 sends as fast as possible. Time order is kept either way.",
    ),
    limit: int = typer.Option(None, help="Replay only the first N items."),
    batch: int = typer.Option(500, help="Items per Redis round trip when not waiting."),
) -> None:
    """Replay a data set onto the Redis Stream in published-time order."""
    from pipelines.datasets import resolve_data_dir
    from services.sentiment.replay import iter_stocknet_items

    if dataset != "stocknet":
        raise fail(
            f"--dataset {dataset!r} cannot be replayed; the one time-stamped set is stocknet."
        )
    if speed < 0:
        raise fail(f"--speed must be 0 or more, got {speed!r}.")
    try:
        items = list(iter_stocknet_items(resolve_data_dir(), limit=limit))
    except DiptychError as exc:
        raise fail(exc) from None
    sent = _publish_with_progress(items, speed=speed, batch=batch, label=f"replay {dataset}")
    console.print(f"Published {sent} items.", markup=False)


def _publish_with_progress(
    items: list[dict[str, Any]], *, speed: float, batch: int, label: str
) -> int:
    from services.sentiment.replay import replay_delays
    from services.sentiment.stream import connect_redis, ensure_group, publish_items

    settings = get_settings().sentiment
    try:
        client = connect_redis()
        ensure_group(client, stream=settings.stream, group=settings.group)
    except DiptychError as exc:
        raise fail(exc) from None
    delays = replay_delays([str(item.get("published_at", "")) for item in items], speed)
    pending: list[dict[str, Any]] = []
    with _progress() as progress:
        task = progress.add_task(label, total=len(items))
        for item, delay in zip(items, delays, strict=True):
            if delay > 0:
                publish_items(client, pending, stream=settings.stream)
                progress.advance(task, len(pending))
                pending = []
                time.sleep(delay)
            pending.append(item)
            if len(pending) >= batch:
                publish_items(client, pending, stream=settings.stream)
                progress.advance(task, len(pending))
                pending = []
        publish_items(client, pending, stream=settings.stream)
        progress.advance(task, len(pending))
    return len(items)


@sentiment_app.command("ingest")
def ingest_command(
    file: Path = typer.Argument(..., help="JSONL or CSV file of items (id, published_at, text)."),
    direct: bool = typer.Option(
        False, help="Score and store in this process instead of publishing to the stream."
    ),
) -> None:
    """Ingest a file of items: onto the stream, or scored and stored directly."""
    from services.sentiment.replay import iter_item_file

    try:
        items = list(iter_item_file(file))
    except DiptychError as exc:
        raise fail(exc) from None
    if not direct:
        sent = _publish_with_progress(items, speed=0, batch=500, label="publish")
        console.print(f"Published {sent} items.", markup=False)
        return
    _ingest_direct(items)


def _ingest_direct(items: list[dict[str, Any]]) -> None:
    from pydantic import ValidationError

    from services.sentiment.pipeline import score_and_store
    from services.sentiment.schemas import ItemCreate

    valid, invalid = [], 0
    for index, raw in enumerate(items):
        try:
            valid.append(ItemCreate.model_validate(raw))
        except ValidationError as exc:
            invalid += 1
            console.print(
                f"item {index} ({raw.get('id')!r}) skipped: {exc.errors()[0]['msg']}", markup=False
            )
    stored = duplicates = 0
    try:
        ensure_database_ready()
        with _progress() as progress:
            task = progress.add_task("score", total=len(valid))
            for start in range(0, len(valid), 256):
                result = score_and_store(valid[start : start + 256])
                stored, duplicates = (
                    stored + len(result.stored),
                    duplicates + len(result.duplicates),
                )
                progress.advance(task, len(valid[start : start + 256]))
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    console.print(f"Stored {stored}, duplicates {duplicates}, invalid {invalid}.", markup=False)


@sentiment_app.command("monitor")
def monitor_command(
    loop: bool = typer.Option(False, help="Repeat every --interval seconds until stopped."),
    interval: float = typer.Option(10.0, help="Seconds between passes with --loop."),
    stream: bool = typer.Option(
        True, help="Take the watermark from the stream's consumer group (needs Redis)."
    ),
) -> None:
    """Evaluate alert rules, queue notifications and send due e-mails."""
    from services.sentiment.monitor import run_monitor_pass
    from services.sentiment.rules import load_rules
    from services.sentiment.stream import connect_redis

    try:
        ensure_database_ready()
        rules = load_rules()
        client = connect_redis() if stream else None
    except DiptychError as exc:
        raise fail(exc) from None
    while True:
        report = run_monitor_pass(rules=rules, client=client)
        until = report.evaluation.until.isoformat() if report.evaluation.until else "-"
        console.print(
            f"until {until}: alerts created {report.evaluation.created}, fired "
            f"{report.evaluation.fired}, resolved {report.evaluation.resolved}; notifications "
            f"{report.plan.notifications}, e-mails sent {report.delivery.sent}.",
            markup=False,
        )
        if not loop:
            return
        time.sleep(interval)


@sentiment_app.command("alerts")
def alerts_command(
    state: list[str] = typer.Option(None, help="Only these states (repeatable)."),
    entity: str = typer.Option(None, help="Only this entity symbol."),
    limit: int = typer.Option(50, help="Maximum number of alerts to list."),
) -> None:
    """List alert episodes, newest first."""
    from services.sentiment.store import list_alerts
    from shared.storage import session_scope

    try:
        ensure_database_ready()
        with session_scope() as session:
            alerts = list_alerts(session, states=state or None, entity=entity, limit=limit)
    except DiptychError as exc:
        raise fail(exc) from None
    table = Table("id", "state", "rule", "entity", "value", "started", "fired", "resolved", "ack")
    for alert in alerts:
        table.add_row(
            str(alert.id),
            alert.state,
            alert.rule,
            alert.entity,
            f"{alert.value:.3f}",
            str(alert.started_at)[:16],
            str(alert.fired_at or "-")[:16],
            str(alert.resolved_at or "-")[:16],
            alert.acknowledged_by or "",
        )
    console.print(table)


@sentiment_app.command("ack")
def ack_command(
    alert_id: int = typer.Argument(..., help="Alert id."),
    by: str = typer.Option(os.environ.get("USER", "cli"), help="Who acknowledges."),
) -> None:
    """Acknowledge an alert: it is no longer repeated while it fires."""
    from services.sentiment.actions import acknowledge_alert

    try:
        ensure_database_ready()
        acknowledge_alert(alert_id, by=by)
    except (DiptychError, LookupError) as exc:
        raise fail(exc) from None
    console.print(f"Alert {alert_id} acknowledged by {by}.", markup=False)


@sentiment_app.command("silence")
def silence_command(
    matcher: list[str] = typer.Option(
        ..., help="`label=value` or `label=~regex` with label rule, entity or severity; repeatable."
    ),
    duration: str = typer.Option("2h", help="How long: a number with s, m, h or d."),
    comment: str = typer.Option("", help="Why."),
    by: str = typer.Option(os.environ.get("USER", "cli"), help="Who creates it."),
) -> None:
    """Silence matching alerts for a while."""
    from services.sentiment.actions import create_silence, parse_duration, parse_matcher

    try:
        ensure_database_ready()
        matchers = [parse_matcher(text) for text in matcher]
        silence = create_silence(
            matchers, duration_s=parse_duration(duration), by=by, comment=comment
        )
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    console.print(f"Silence {silence.id} until {silence.ends_at.isoformat()}.", markup=False)


@sentiment_app.command("expire-silence")
def expire_silence_command(silence_id: int = typer.Argument(..., help="Silence id.")) -> None:
    """End a silence now."""
    from services.sentiment.actions import expire_silence

    try:
        ensure_database_ready()
        expire_silence(silence_id)
    except (DiptychError, LookupError) as exc:
        raise fail(exc) from None
    console.print(f"Silence {silence_id} expired.", markup=False)


@sentiment_app.command("recompute")
def recompute_command() -> None:
    """Recompute every alert offline from the stored scores and compare with the stored alerts."""
    from services.sentiment.actions import compare_with_offline

    try:
        ensure_database_ready()
        comparison = compare_with_offline()
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(
        f"Stored episodes: {comparison.stored}, recomputed: {comparison.recomputed}, "
        f"only stored: {len(comparison.only_stored)}, only recomputed: "
        f"{len(comparison.only_recomputed)}.",
        markup=False,
    )
    if comparison.only_stored or comparison.only_recomputed:
        raise typer.Exit(code=1)


@sentiment_app.command("dead-letters")
def dead_letters_command(
    limit: int = typer.Option(20, help="Maximum number of entries to show."),
) -> None:
    """Show the newest entries of the dead-letter stream with their errors."""
    from services.sentiment.stream import connect_redis

    settings = get_settings().sentiment
    try:
        client = connect_redis()
    except DiptychError as exc:
        raise fail(exc) from None
    table = Table("entry", "deliveries", "error")
    rows: Any = client.xrevrange(settings.dead_letter_stream, count=limit)
    for entry_id, fields in rows:
        table.add_row(
            str(entry_id), str(fields.get("deliveries", "")), str(fields.get("error", ""))[:200]
        )
    console.print(table)
