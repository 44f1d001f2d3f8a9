"""One pass of the alert side: evaluate rules to the watermark, plan notifications, deliver mail."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import redis

from services.sentiment.alerting import EvaluationReport, compute_watermark, evaluate_rules
from services.sentiment.notifier import NotificationPlan, plan_notifications
from services.sentiment.rules import RuleSet, load_rules
from services.sentiment.stream import find_done_time
from services.sentiment.timeutil import utcnow
from shared.notify import DeliveryReport, deliver_due_messages
from shared.settings import get_settings
from shared.storage import session_scope

__all__ = ["MonitorReport", "run_monitor_pass", "run_replayed_pass"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorReport:
    """The reports of one pass: evaluation, notification planning, delivery."""

    evaluation: EvaluationReport
    plan: NotificationPlan
    delivery: DeliveryReport


def run_monitor_pass(
    *,
    rules: RuleSet | None = None,
    client: redis.Redis | None = None,
    now: dt.datetime | None = None,
    deliver: bool = True,
) -> MonitorReport:
    """Evaluate the rules, queue due notifications and send due e-mails.

    Args:
        rules: The rules; defaults to the configured rules file.
        client: Redis client of the item stream; without one the watermark is
            the newest stored item.
        now: Wall-clock time (tests move it forward).
        deliver: Whether to send due outbox messages in this pass.
    """
    settings = get_settings()
    rules = rules or load_rules()
    now = now or utcnow()
    stream_time = None
    if client is not None:
        stream_time = find_done_time(
            client, stream=settings.sentiment.stream, group=settings.sentiment.group
        )
    with session_scope() as session:
        # With a stream, nothing is known to be complete until the group has
        # finished an entry. The newest stored item may be ahead of items that
        # another worker has not committed yet.
        until = (
            None
            if client is not None and stream_time is None
            else compute_watermark(
                session, stream_time=stream_time, lateness_s=settings.sentiment.allowed_lateness_s
            )
        )
        evaluation = (
            evaluate_rules(session, rules, until=until, now=now)
            if until is not None
            else EvaluationReport(until=None)
        )
    with session_scope() as session:
        plan = plan_notifications(session, rules, now=now, settings=settings)
    delivery = deliver_due_messages(now=now) if deliver else DeliveryReport()
    return MonitorReport(evaluation=evaluation, plan=plan, delivery=delivery)


def run_replayed_pass(*, rules: RuleSet, until: dt.datetime) -> NotificationPlan:
    """Evaluate and plan as live passes would at published time `until`, without sending.

    Replays of past items use the items' published time as their clock. The
    rules advance to `until` with `until` as the current time. The planner
    then runs at `until` and again one group wait later, as the next live pass
    would.
    Alerts that fire for one bucket are then notified as they are live. The
    caller sends the queued e-mails (`deliver_due_messages`) on the wall clock.
    """
    later = until + dt.timedelta(seconds=rules.group_wait_s)
    with session_scope() as session:
        evaluate_rules(session, rules, until=until, now=until)
        first = plan_notifications(session, rules, now=until)
    with session_scope() as session:
        second = plan_notifications(session, rules, now=later)
    return NotificationPlan(
        notifications=first.notifications + second.notifications,
        messages=first.messages + second.messages,
    )
