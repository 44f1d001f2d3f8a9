"""The Redis Stream path: consumer group, dead letters, killed workers, alerts vs offline.

These tests use a real Redis database (reserved per session) and real
PostgreSQL; the worker tests start `diptych sentiment consume` processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from services.sentiment.actions import compare_with_offline
from services.sentiment.models import Bucket, Mention, RuleState, SentimentItem
from services.sentiment.monitor import run_monitor_pass
from services.sentiment.pipeline import process_entries
from services.sentiment.replay import iter_stocknet_items
from services.sentiment.rules import RuleSet
from services.sentiment.scoring import ScoredItem, SentimentScorer, load_sentiment_scorer
from services.sentiment.stream import (
    BatchOutcome,
    StreamConsumer,
    StreamEntry,
    connect_redis,
    ensure_group,
    publish_items,
)
from shared.settings import get_settings, reset_settings
from shared.storage import session_scope
from tests._celery import wait_until

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]

# Low thresholds so that a slice of two weeks of tweets raises alerts.
SLICE_RULES = RuleSet.model_validate(
    {
        "rules": [
            {
                "name": "negative-surge",
                "kind": "negative_share_surge",
                "bucket": "1h",
                "min_volume": 2,
                "threshold_sd": 1.5,
                "baseline_buckets": 48,
                "min_baseline_buckets": 3,
                "min_spread": 0.05,
                "severity": "critical",
            },
            {
                "name": "volume-spike",
                "kind": "volume_spike",
                "bucket": "1h",
                "min_volume": 3,
                "threshold_sd": 2.0,
                "baseline_buckets": 48,
                "min_baseline_buckets": 3,
                "min_spread": 0.5,
                "for_buckets": 2,
            },
        ]
    }
)


@pytest.fixture
def stream_env(
    sentiment_env: object, celery_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[redis.Redis]:
    """The sentiment model, a database and an empty Redis database for the stream."""
    monkeypatch.setenv("DIPTYCH_REDIS_URL", celery_redis_url)
    monkeypatch.setenv("DIPTYCH_SENTIMENT__CLAIM_IDLE_MS", "1000")
    reset_settings()
    client = connect_redis()
    yield client
    client.close()


def _count_items() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(SentimentItem)) or 0)


class PoisonScorer(SentimentScorer):
    """Raise on any batch that contains the word POISON, as a model bug would."""

    def score(self, texts: Sequence[str]) -> list[ScoredItem]:
        if any("POISON" in text for text in texts):
            raise RuntimeError("tokenizer crashed on POISON")
        return super().score(texts)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_poison_item_dead_letters_rest_stored(
    stream_env: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Malformed, invalid and poison entries end in the dead-letter stream; the rest is stored."""
    # Given a batch with three bad entries among good ones
    monkeypatch.setenv("DIPTYCH_SENTIMENT__CLAIM_IDLE_MS", "50")
    monkeypatch.setenv("DIPTYCH_SENTIMENT__MAX_DELIVERIES", "3")
    reset_settings()
    settings = get_settings().sentiment
    good = [
        {"id": f"g{i}", "published_at": "2024-01-02T10:00:00Z", "text": f"Amazon profit rises {i}"}
        for i in range(8)
    ]
    poison = {"id": "p1", "published_at": "2024-01-02T10:00:00Z", "text": "POISON for $AMZN"}
    invalid = {"id": "bad", "published_at": "not a time", "text": "x"}
    publish_items(
        stream_env, [*good[:4], poison, invalid, "{not json", *good[4:]], stream=settings.stream
    )
    base = load_sentiment_scorer()
    scorer = PoisonScorer(base.classifier)
    consumer = StreamConsumer(
        stream_env, name="test", process=lambda entries: process_entries(entries, scorer=scorer)
    )

    # When the consumer runs until nothing is pending
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        consumer.run_once()
        if stream_env.xpending(settings.stream, settings.group)["pending"] == 0:
            break
        time.sleep(0.06)

    # Then the good items are stored and the three bad entries are dead letters with errors
    assert _count_items() == 8
    dead = {
        fields.get("source_entry"): fields
        for _id, fields in stream_env.xrange(settings.dead_letter_stream)
    }
    assert len(dead) == 3
    errors = sorted(fields["error"] for fields in dead.values())
    assert any("failed 3 times" in e and "tokenizer crashed on POISON" in e for e in errors)
    assert any("published_at" in e for e in errors)
    assert any("not JSON" in e or "invalid item" in e for e in errors)
    poisoned = next(f for f in dead.values() if "POISON" in f["error"])
    assert json.loads(poisoned["item"])["id"] == "p1"
    assert poisoned["deliveries"] == "4"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_duplicate_ids_stored_once(stream_env: redis.Redis) -> None:
    """The same item id published three times is stored once and counted once in buckets."""
    settings = get_settings().sentiment
    item = {"id": "dup", "published_at": "2024-01-02T10:00:00Z", "text": "Pfizer shares fall"}
    publish_items(stream_env, [item, item], stream=settings.stream)
    consumer = StreamConsumer(stream_env, name="a", process=process_entries)
    consumer.run_once()
    publish_items(stream_env, [item], stream=settings.stream)
    consumer.run_once()
    assert _count_items() == 1
    with session_scope() as session:
        volume = session.scalar(
            select(func.sum(Bucket.n_positive + Bucket.n_neutral + Bucket.n_negative)).where(
                Bucket.granularity == "1h"
            )
        )
    assert volume == 1


def _worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def _start_consumer(
    name: str, log: Path, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "diptych"), "sentiment", "consume", "--name", name]
    with log.open("ab") as handle:
        return subprocess.Popen(
            [*command, "--exit-when-idle", "4"],
            cwd=REPOSITORY_ROOT,
            env=_worker_env(extra),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_killed_worker_loses_nothing(
    stream_env: redis.Redis, data_dir: Path, tmp_path: Path
) -> None:
    """A worker killed with SIGKILL mid-batch: another claims its entries, each item stored once."""
    # Given 400 tweets on the stream and one worker scoring them in batches of 16
    settings = get_settings().sentiment
    items = list(iter_stocknet_items(data_dir, limit=400))
    publish_items(stream_env, items, stream=settings.stream)
    log = tmp_path / "workers.log"
    small_batches = {"DIPTYCH_SENTIMENT__BATCH_SIZE": "16"}
    first = _start_consumer("doomed", log, small_batches)
    try:
        wait_until(
            lambda: _count_items() > 0, timeout_s=180, message=lambda: log.read_text()[-3000:]
        )

        # When it is killed with unacknowledged entries, and a second worker starts
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        held = stream_env.xpending_range(
            settings.stream, settings.group, min="-", max="+", count=1000, consumername="doomed"
        )
        stored_at_kill = _count_items()
        second = _start_consumer("rescuer", log)
        try:
            wait_until(
                lambda: second.poll() is not None,
                timeout_s=240,
                message=lambda: log.read_text()[-3000:],
            )
        finally:
            _stop(second)
    finally:
        _stop(first)

    # Then every tweet is stored exactly once and nothing is pending
    assert len(held) > 0
    assert stored_at_kill < 400
    assert _count_items() == 400
    with session_scope() as session:
        distinct = session.scalar(select(func.count(func.distinct(SentimentItem.external_id))))
        pairs = session.scalar(
            select(func.count()).select_from(
                select(Mention.item_id, Mention.entity).distinct().subquery()
            )
        )
        volume = session.scalar(
            select(func.sum(Bucket.n_positive + Bucket.n_neutral + Bucket.n_negative)).where(
                Bucket.granularity == "5m"
            )
        )
    assert distinct == 400
    assert volume == pairs
    assert stream_env.xpending(settings.stream, settings.group)["pending"] == 0
    assert "consumer claimed name=rescuer" in log.read_text()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_workers_alerts_match_offline(
    stream_env: redis.Redis, data_dir: Path, tmp_path: Path
) -> None:
    """A StockNet slice through two workers: stored once, alerts equal the offline recomputation."""
    # Given 800 tweets on the stream and two workers
    settings = get_settings().sentiment
    items = list(iter_stocknet_items(data_dir, limit=800))
    publish_items(stream_env, items, stream=settings.stream)
    log = tmp_path / "workers.log"
    workers = [_start_consumer(f"w{index}", log) for index in range(2)]

    # When the monitor evaluates rules while they consume, and once after
    try:
        deadline = time.monotonic() + 300
        while any(worker.poll() is None for worker in workers):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            run_monitor_pass(rules=SLICE_RULES, client=stream_env, deliver=False)
            time.sleep(0.5)
    finally:
        for worker in workers:
            _stop(worker)
    final = run_monitor_pass(rules=SLICE_RULES, client=stream_env, deliver=False)

    # Then each tweet is stored once, evaluation reached the last tweet, and alerts match
    assert _count_items() == 800
    assert final.evaluation.until is not None
    assert final.evaluation.until.isoformat().startswith(items[-1]["published_at"][:16])
    log_text = log.read_text()
    assert "consumer stopped name=w0" in log_text
    assert "consumer stopped name=w1" in log_text
    comparison = compare_with_offline(SLICE_RULES)
    assert comparison.only_stored == []
    assert comparison.only_recomputed == []
    assert comparison.stored > 0
    with session_scope() as session:
        assert len(list(session.scalars(select(RuleState)))) == 2


def test_stream_entry_without_item_field_is_dead(sentiment_env: object) -> None:
    """An entry without the item field is dead-lettered at once with a clear error."""
    outcome = process_entries([StreamEntry("1-0", {"other": "x"})])
    assert outcome.dead == {"1-0": "entry has no 'item' field; fields: ['other']"}


def test_watchdog_counts_quiet_stream(
    stream_env: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream without new entries for quiet_after_s is logged and counted once per quiet spell."""
    monkeypatch.setenv("DIPTYCH_SENTIMENT__QUIET_AFTER_S", "0.2")
    reset_settings()
    settings = get_settings().sentiment
    publish_items(stream_env, [{"id": "w1"}], stream=settings.stream)
    consumer = StreamConsumer(stream_env, name="watch", process=lambda entries: BatchOutcome())
    time.sleep(0.3)
    consumer._watch()
    consumer._last_watch = 0.0
    consumer._watch()
    assert stream_env.get(f"{settings.stream}:quiet-periods") == "1"
    assert "stream quiet" in caplog.text
    publish_items(stream_env, [{"id": "w2"}], stream=settings.stream)
    consumer._last_watch = 0.0
    consumer._watch()
    time.sleep(0.3)
    consumer._last_watch = 0.0
    consumer._watch()
    assert stream_env.get(f"{settings.stream}:quiet-periods") == "2"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_monitor_task_evaluates_to_stream_frontier(stream_env: redis.Redis) -> None:
    """The Celery monitor task evaluates rules up to the group's finished entries."""
    from services.sentiment.tasks import monitor_alerts

    settings = get_settings().sentiment
    items = [
        {"id": f"t{i}", "published_at": f"2024-01-02T10:0{i}:00Z", "text": "Pfizer shares fall"}
        for i in range(3)
    ]
    publish_items(stream_env, items, stream=settings.stream)
    assert monitor_alerts() == {"fired": 0, "sent": 0}
    with session_scope() as session:
        assert list(session.scalars(select(RuleState))) == []
    StreamConsumer(stream_env, name="a", process=process_entries).run_once()
    monitor_alerts()
    with session_scope() as session:
        until = {state.evaluated_until for state in session.scalars(select(RuleState))}
    assert [value.isoformat() for value in until] == ["2024-01-02T10:02:00+00:00"]


def test_watchdog_ignores_never_used_stream(
    stream_env: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream that never held an entry (id 0-0) is not reported quiet since 1970."""
    monkeypatch.setenv("DIPTYCH_SENTIMENT__QUIET_AFTER_S", "0.2")
    reset_settings()
    settings = get_settings().sentiment
    ensure_group(stream_env, stream=settings.stream, group=settings.group)
    consumer = StreamConsumer(stream_env, name="watch", process=lambda entries: BatchOutcome())

    consumer._watch()

    assert stream_env.get(f"{settings.stream}:quiet-periods") is None
    assert "stream quiet" not in caplog.text


def test_monitor_pass_before_stream_exists(stream_env: redis.Redis) -> None:
    """A monitor pass before any consumer created the stream evaluates nothing, without error."""
    from services.sentiment.monitor import run_monitor_pass
    from services.sentiment.stream import find_done_time

    settings = get_settings().sentiment
    assert not stream_env.exists(settings.stream)

    report = run_monitor_pass(client=stream_env, deliver=False)

    assert find_done_time(stream_env, stream=settings.stream, group=settings.group) is None
    assert report.evaluation.until is None
