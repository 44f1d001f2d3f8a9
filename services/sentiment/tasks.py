"""Celery tasks of the sentiment queue, for Celery beat: a monitor pass and outbox delivery.

Scoring itself runs in long-lived stream consumers (`diptych sentiment
consume`), not in tasks: a consumer group already gives each entry to one
worker, acknowledges after the commit and hands a dead worker's entries on.
"""

from __future__ import annotations

from typing import Any

from celery.utils.log import get_task_logger
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from shared.worker import DiptychTask, get_celery_app

__all__ = ["deliver_outbox", "monitor_alerts"]

logger = get_task_logger(__name__)
app = get_celery_app()

_RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, RedisConnectionError),
    "retry_backoff": True,
    "max_retries": 5,
}


@app.task(name="sentiment.monitor", base=DiptychTask, **_RETRY)
def monitor_alerts() -> dict[str, int]:
    """Evaluate alert rules, queue due notifications and send due e-mails."""
    from services.sentiment.monitor import run_monitor_pass
    from services.sentiment.stream import connect_redis

    report = run_monitor_pass(client=connect_redis())
    logger.info(
        "sentiment.monitor created=%d fired=%d resolved=%d notifications=%d sent=%d",
        report.evaluation.created,
        report.evaluation.fired,
        report.evaluation.resolved,
        report.plan.notifications,
        report.delivery.sent,
    )
    return {"fired": report.evaluation.fired, "sent": report.delivery.sent}


@app.task(name="sentiment.deliver_outbox", base=DiptychTask, **_RETRY)
def deliver_outbox() -> int:
    """Send the outbox messages that are due; return how many were sent."""
    from shared.notify import deliver_due_messages

    return deliver_due_messages().sent
