"""Notifications per entity group, in the manner of Prometheus Alertmanager.

Alerts are grouped by entity. A group is notified when a firing alert joins
it (after `group_wait_s` for the group's first notification, and no sooner
than `group_interval_s` after the previous one), when a notified alert
resolves (`send_resolved`), and again every `repeat_interval_s` while an
unacknowledged alert still fires. Silenced alerts are left out.

Each notification is a `NotificationLogEntry` plus one outbox message per
recipient, committed in one transaction: after a restart the log shows what
was already queued, so nothing is queued twice, and the outbox delivers
what was queued but not yet sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.sentiment.charts import render_trend_png
from services.sentiment.emails import AlertEmailContent, compose_alert_email
from services.sentiment.models import NotificationLogEntry, SentimentAlert, Silence
from services.sentiment.rules import RuleSet
from services.sentiment.store import list_bucket_series, list_items
from services.sentiment.timeutil import as_utc, parse_granularity, utcnow
from shared.notify import enqueue_email
from shared.settings import Settings, get_settings

__all__ = ["NotificationPlan", "is_silenced", "plan_notifications"]

logger = logging.getLogger(__name__)

# Buckets of history drawn in the e-mail chart.
CHART_BUCKETS = 48
RESOLVED_LOOKBACK = dt.timedelta(days=7)


@dataclass(frozen=True)
class NotificationPlan:
    """Counts of one planning pass: notifications logged and e-mails queued."""

    notifications: int = 0
    messages: int = 0


def is_silenced(alert: SentimentAlert, silences: Sequence[Silence]) -> bool:
    """Return whether a silence matches the alert's labels with every one of its matchers."""
    labels = {"rule": alert.rule, "entity": alert.entity, "severity": alert.severity}
    return any(_matches_all(silence, labels) for silence in silences)


def _matches_all(silence: Silence, labels: dict[str, str]) -> bool:
    for matcher in silence.matchers:
        value = labels.get(str(matcher.get("name")), "")
        expected = str(matcher.get("value", ""))
        if matcher.get("is_regex"):
            if not re.fullmatch(expected, value):
                return False
        elif value != expected:
            return False
    return True


def plan_notifications(
    session: Session,
    rules: RuleSet,
    *,
    now: dt.datetime | None = None,
    settings: Settings | None = None,
) -> NotificationPlan:
    """Queue the notifications that are due, one log entry per entity group.

    Args:
        session: The session; the caller commits.
        rules: Supplies the group timing and `send_resolved`.
        now: Wall-clock time.
        settings: Recipients, sender and console URL.
    """
    now = now or utcnow()
    settings = settings or get_settings()
    silences = list(
        session.scalars(select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now))
    )
    groups = _load_groups(session, now)
    notifications = messages = 0
    for entity in sorted(groups):
        last = session.scalars(
            select(NotificationLogEntry)
            .where(NotificationLogEntry.group_key == entity)
            .order_by(NotificationLogEntry.id.desc())
            .limit(1)
        ).first()
        decision = _decide(groups[entity], last, silences, rules, now)
        if decision is None:
            continue
        firing, resolved = decision
        messages += _notify(session, entity, firing, resolved, rules, now, settings)
        notifications += 1
    return NotificationPlan(notifications=notifications, messages=messages)


def _load_groups(session: Session, now: dt.datetime) -> dict[str, list[SentimentAlert]]:
    # Firing alerts, and resolved ones that a notification reported as firing
    # and that no notification has reported as resolved yet.
    groups: dict[str, list[SentimentAlert]] = defaultdict(list)
    for alert in session.scalars(select(SentimentAlert).where(SentimentAlert.state == "firing")):
        groups[alert.entity].append(alert)
    # NOTE: an alert that resolved more than RESOLVED_LOOKBACK ago is not
    # reported as resolved, which matters only when planning stopped that long.
    candidates = session.scalars(
        select(SentimentAlert).where(
            SentimentAlert.state == "resolved",
            SentimentAlert.observed_resolved_at >= now - RESOLVED_LOOKBACK,
        )
    )
    for alert in candidates:
        groups[alert.entity].append(alert)
    return groups


def _decide(
    alerts: list[SentimentAlert],
    last: NotificationLogEntry | None,
    silences: Sequence[Silence],
    rules: RuleSet,
    now: dt.datetime,
) -> tuple[list[SentimentAlert], list[SentimentAlert]] | None:
    visible = [alert for alert in alerts if not is_silenced(alert, silences)]
    firing = sorted((a for a in visible if a.state == "firing"), key=lambda a: a.id)
    reported_firing = set(last.firing_ids) if last else set()
    reported_resolved = set(last.resolved_ids) if last else set()
    resolved = sorted(
        (
            a
            for a in visible
            if a.state == "resolved" and a.id in reported_firing and a.id not in reported_resolved
        ),
        key=lambda a: a.id,
    )
    if not rules.send_resolved:
        resolved = []
    if not firing and not resolved:
        return None
    if last is None:
        first_fired = min(as_utc(a.observed_firing_at or now) for a in firing)
        due = first_fired + dt.timedelta(seconds=rules.group_wait_s)
        return (firing, resolved) if now >= due else None
    since_last = (now - as_utc(last.created_at)).total_seconds()
    has_new = any(a.id not in reported_firing for a in firing) or bool(resolved)
    if has_new and since_last >= rules.group_interval_s:
        return firing, resolved
    unacknowledged = [a for a in firing if a.acknowledged_at is None]
    if unacknowledged and since_last >= rules.repeat_interval_s:
        return firing, resolved
    return None


def _notify(
    session: Session,
    entity: str,
    firing: list[SentimentAlert],
    resolved: list[SentimentAlert],
    rules: RuleSet,
    now: dt.datetime,
    settings: Settings,
) -> int:
    recipients = settings.sentiment.recipients
    entry = NotificationLogEntry(
        group_key=entity,
        firing_ids=[a.id for a in firing],
        resolved_ids=[a.id for a in resolved],
        recipients=len(recipients),
        created_at=now,
    )
    session.add(entry)
    session.flush()
    if not recipients:
        logger.warning(
            "notification logged without recipients entity=%s log_id=%d; set "
            "DIPTYCH_SENTIMENT__RECIPIENTS to receive alert e-mails",
            entity,
            entry.id,
        )
        return 0
    content = _build_content(session, entity, firing or resolved, firing, resolved, rules, settings)
    for recipient in recipients:
        message = compose_alert_email(
            content,
            recipient=recipient,
            sender=settings.notify.sender,
            timezone=recipient.timezone,
        )
        enqueue_email(
            session, dedup_key=f"sentiment:{entry.id}:{recipient.address}", message=message
        )
    logger.info(
        "notification queued entity=%s log_id=%d firing=%d resolved=%d recipients=%d",
        entity,
        entry.id,
        len(firing),
        len(resolved),
        len(recipients),
    )
    return len(recipients)


def _build_content(
    session: Session,
    entity: str,
    reference: list[SentimentAlert],
    firing: list[SentimentAlert],
    resolved: list[SentimentAlert],
    rules: RuleSet,
    settings: Settings,
) -> AlertEmailContent:
    from services.sentiment.gazetteer import load_default_gazetteer

    kinds = {rule.name: rule.kind for rule in rules.rules}
    buckets = {rule.name: rule.bucket for rule in rules.rules}
    granularity = buckets.get(reference[0].rule, "1h")
    width = dt.timedelta(seconds=parse_granularity(granularity))
    end = max(as_utc(a.resolved_at or a.fired_at or a.started_at) for a in reference)
    series = list_bucket_series(
        session, entity=entity, granularity=granularity, start=end - width * CHART_BUCKETS, end=end
    )
    items = list_items(
        session,
        entity=entity,
        label="negative",
        order="negative",
        limit=settings.sentiment.top_items,
        published_after=end - width * CHART_BUCKETS,
        published_before=end,
    )
    return AlertEmailContent(
        entity=entity,
        entity_name=load_default_gazetteer().name_of(entity),
        firing=firing,
        resolved=resolved,
        items=items,
        chart_png=render_trend_png(series, title=f"{entity} ({granularity})"),
        rule_kinds=kinds,
        console_url=settings.sentiment.console_url,
    )
