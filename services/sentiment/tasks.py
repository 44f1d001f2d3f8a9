"""Celery tasks of the sentiment queue, for Celery beat: a monitor pass and outbox delivery.

Scoring itself runs in long-lived stream consumers (`diptych sentiment
consume`), not in tasks: a consumer group already gives each entry to one
worker, acknowledges after the commit and hands a dead worker's entries on.
"""

from __future__ import annotations

from celery.utils.log import get_task_logger

from shared.worker import RETRY_ON_CONNECTION_LOSS, DiptychTask, get_celery_app
from shared.worker.schedule import ScheduledTask

__all__ = ["SCHEDULES", "deliver_outbox", "monitor_alerts"]

# One monitor pass at a time: a pass that finds the lock taken skips its turn.
MONITOR_LOCK_KEY = "diptych:lock:sentiment.monitor"
MONITOR_LOCK_TIMEOUT_S = 600

SCHEDULES = [
    ScheduledTask(
        name="sentiment-monitor",
        task="sentiment.monitor",
        cron="* * * * *",
        description="Evaluate the alert rules, plan notifications and send due alert e-mails.",
    ),
    ScheduledTask(
        name="notify-outbox",
        task="sentiment.deliver_outbox",
        cron="*/5 * * * *",
        description="Retry outbox e-mails whose next attempt is due.",
    ),
]

logger = get_task_logger(__name__)
app = get_celery_app()


@app.task(name="sentiment.monitor", base=DiptychTask, **RETRY_ON_CONNECTION_LOSS)
def monitor_alerts() -> dict[str, int]:
    """Evaluate alert rules, queue due notifications and send due e-mails."""
    from services.sentiment.monitor import run_monitor_pass
    from services.sentiment.stream import connect_redis

    client = connect_redis()
    lock = client.lock(MONITOR_LOCK_KEY, timeout=MONITOR_LOCK_TIMEOUT_S, blocking=False)
    if not lock.acquire():
        logger.info("sentiment.monitor skipped: lock %s is taken by another pass", MONITOR_LOCK_KEY)
        return {"fired": 0, "sent": 0}
    try:
        report = run_monitor_pass(client=client)
    finally:
        lock.release()
    logger.info(
        "sentiment.monitor created=%d fired=%d resolved=%d notifications=%d sent=%d",
        report.evaluation.created,
        report.evaluation.fired,
        report.evaluation.resolved,
        report.plan.notifications,
        report.delivery.sent,
    )
    return {"fired": report.evaluation.fired, "sent": report.delivery.sent}


@app.task(name="sentiment.deliver_outbox", base=DiptychTask, **RETRY_ON_CONNECTION_LOSS)
def deliver_outbox() -> int:
    """Send the outbox messages that are due; return how many were sent."""
    from shared.notify import deliver_due_messages

    return deliver_due_messages().sent
