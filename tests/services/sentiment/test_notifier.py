"""Notification timing in the manner of Alertmanager: group wait, interval, repeat, silences."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from services.sentiment.actions import (
    acknowledge_alert,
    create_silence,
    expire_silence,
    parse_matcher,
)
from services.sentiment.alerting import evaluate_rules
from services.sentiment.models import NotificationLogEntry, SentimentAlert
from services.sentiment.notifier import plan_notifications
from services.sentiment.rules import RuleSet
from services.sentiment.store import store_scored_items
from shared.notify import OutboxMessage
from shared.settings import reset_settings
from shared.storage import session_scope
from tests.services.sentiment.conftest import make_record

T0 = dt.datetime(2024, 5, 6, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RULE = {
    "kind": "negative_share_surge",
    "bucket": "1h",
    "min_volume": 3,
    "threshold_sd": 2.0,
    "baseline_buckets": 24,
    "min_baseline_buckets": 5,
    "min_spread": 0.05,
}
RULES = RuleSet.model_validate(
    {
        "group_wait_s": 30,
        "group_interval_s": 300,
        "repeat_interval_s": 3600,
        "rules": [
            {**RULE, "name": "negative-surge", "severity": "critical"},
            {**RULE, "name": "negative-surge-2h", "for_buckets": 2, "severity": "warning"},
        ],
    }
)


@pytest.fixture
def recipients(sentiment_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DIPTYCH_SENTIMENT__RECIPIENTS", json.dumps([{"address": "risk@example.com"}])
    )
    reset_settings()


def _store(entity: str, surge_hours: tuple[int, ...], total: int = 16) -> None:
    records = []
    for hour in range(total):
        labels = ["negative"] * 5 if hour in surge_hours else ["positive"] * 4
        for index, label in enumerate(labels):
            at = T0 + hour * HOUR + dt.timedelta(minutes=5)
            records.append(make_record(f"{entity}-{hour}-{index}", at, entity=entity, label=label))
    with session_scope() as session:
        store_scored_items(session, records)


def _evaluate(until_hour: int, now: dt.datetime) -> None:
    with session_scope() as session:
        evaluate_rules(session, RULES, until=T0 + until_hour * HOUR, now=now)


def _plan(now: dt.datetime) -> list[NotificationLogEntry]:
    with session_scope() as session:
        before = {entry.id for entry in session.scalars(select(NotificationLogEntry))}
        plan_notifications(session, RULES, now=now)
        return [e for e in session.scalars(select(NotificationLogEntry)) if e.id not in before]


def test_group_wait_then_one_notification(recipients: None) -> None:
    """The first notification waits group_wait; planning again sends nothing new."""
    _store("AMZN", (10,))
    _evaluate(11, NOW)
    assert _plan(NOW + dt.timedelta(seconds=10)) == []
    sent = _plan(NOW + dt.timedelta(seconds=31))
    assert len(sent) == 1
    assert sent[0].group_key == "AMZN"
    assert _plan(NOW + dt.timedelta(seconds=120)) == []
    with session_scope() as session:
        assert len(list(session.scalars(select(OutboxMessage)))) == 1


def test_alerts_of_one_entity_are_grouped(recipients: None) -> None:
    """Two rules firing for one entity go out in one notification; a new one waits the interval."""
    _store("AMZN", (10, 11))
    _evaluate(11, NOW)
    first = _plan(NOW + dt.timedelta(seconds=31))
    _evaluate(12, NOW + dt.timedelta(seconds=40))
    early = _plan(NOW + dt.timedelta(seconds=60))
    later = _plan(NOW + dt.timedelta(seconds=31 + 300))
    assert [len(e.firing_ids) for e in first] == [1]
    assert early == []
    assert [len(e.firing_ids) for e in later] == [2]


def test_repeat_interval_and_acknowledge(recipients: None) -> None:
    """A firing group repeats every repeat_interval until it is acknowledged."""
    _store("AMZN", (10,), total=11)
    _evaluate(11, NOW)
    _plan(NOW + dt.timedelta(seconds=31))
    repeated = _plan(NOW + dt.timedelta(seconds=31 + 3600))
    with session_scope() as session:
        alert_id = session.scalars(select(SentimentAlert.id)).first()
    assert alert_id is not None
    acknowledge_alert(alert_id, by="ana")
    after_ack = _plan(NOW + dt.timedelta(seconds=31 + 7200))
    assert len(repeated) == 1
    assert after_ack == []


def test_resolved_is_notified_once(recipients: None) -> None:
    """When a notified alert resolves, one notification reports it."""
    _store("AMZN", (10,))
    _evaluate(11, NOW)
    _plan(NOW + dt.timedelta(seconds=31))
    _evaluate(13, NOW + dt.timedelta(seconds=60))
    resolved = _plan(NOW + dt.timedelta(seconds=31 + 300))
    again = _plan(NOW + dt.timedelta(seconds=31 + 3600 * 2))
    assert [(e.firing_ids, len(e.resolved_ids)) for e in resolved] == [([], 1)]
    assert again == []


def test_silence_mutes_until_expired(recipients: None) -> None:
    """A matching silence mutes the group; after it is expired the alert is notified."""
    _store("AMZN", (10,))
    _store("MSFT", (10,))
    _evaluate(11, NOW)
    silence = create_silence(
        [parse_matcher("entity=~AM.*"), parse_matcher("severity=critical")],
        duration_s=3600,
        by="ana",
        now=NOW,
    )
    muted = _plan(NOW + dt.timedelta(seconds=31))
    expire_silence(silence.id, now=NOW + dt.timedelta(seconds=60))
    unmuted = _plan(NOW + dt.timedelta(seconds=90))
    assert [e.group_key for e in muted] == ["MSFT"]
    assert [e.group_key for e in unmuted] == ["AMZN"]


def test_no_recipients_logs_without_mail(sentiment_db: str) -> None:
    """Without recipients the notification is logged and no e-mail is queued."""
    _store("AMZN", (10,))
    _evaluate(11, NOW)
    sent = _plan(NOW + dt.timedelta(seconds=31))
    assert [e.recipients for e in sent] == [0]
    with session_scope() as session:
        assert list(session.scalars(select(OutboxMessage))) == []


@pytest.mark.parametrize("text", ["entity", "team=risk", "entity=~("])
def test_invalid_matcher_raises(text: str) -> None:
    """Matchers need a known label and a valid regular expression."""
    with pytest.raises(ValueError):
        parse_matcher(text)


def test_replayed_passes_notify_one_bucket_alert(recipients: None) -> None:
    """On the replay clock an alert firing for one bucket is notified, then its resolution.

    A single live-style pass per day would see the alert fire and resolve at
    once and send nothing; stepping bucket by bucket sends both messages.
    """
    from services.sentiment.monitor import run_replayed_pass

    _store("AMZN", (10,))
    plans = [run_replayed_pass(rules=RULES, until=T0 + hour * HOUR) for hour in range(1, 17)]

    with session_scope() as session:
        entries = list(
            session.scalars(select(NotificationLogEntry).order_by(NotificationLogEntry.id))
        )
        outbox = list(session.scalars(select(OutboxMessage)))
    assert [(len(e.firing_ids), len(e.resolved_ids)) for e in entries] == [(1, 0), (0, 1)]
    assert entries[0].created_at.replace(tzinfo=dt.UTC) == T0 + 11 * HOUR + dt.timedelta(seconds=30)
    assert sum(plan.messages for plan in plans) == len(outbox) == 2
