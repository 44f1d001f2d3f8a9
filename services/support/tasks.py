"""Celery tasks of the support queue: one per pipeline step, each submitting the next.

Tasks are thin: the steps in `services.support.pipeline` do the work and skip
what is already stored, so a task delivered twice (late acknowledgement after
a killed worker) changes nothing the second time. Models load on the first
task in each worker child, never at import.
"""

from __future__ import annotations

from typing import Any

from celery.utils.log import get_task_logger
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from services.support import pipeline
from shared.worker import DiptychTask, get_celery_app

__all__ = ["draft_ticket", "retrieve_ticket", "triage_ticket"]

logger = get_task_logger(__name__)
app = get_celery_app()

# A dropped database or broker connection is retried with backoff. Any other
# error is a bug or bad data, so a retry would only repeat it.
_RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, RedisConnectionError),
    "retry_backoff": True,
    "max_retries": 5,
}


@app.task(name="support.triage", base=DiptychTask, **_RETRY)
def triage_ticket(ticket_id: int) -> None:
    """Classify a ticket, then queue its retrieval."""
    pipeline.triage_tickets([ticket_id])
    retrieve_ticket.apply_async(args=(ticket_id,))


@app.task(name="support.retrieve", base=DiptychTask, **_RETRY)
def retrieve_ticket(ticket_id: int) -> None:
    """Retrieve a ticket's passages, then queue its draft."""
    pipeline.retrieve_tickets([ticket_id])
    draft_ticket.apply_async(args=(ticket_id,))


@app.task(name="support.draft", base=DiptychTask, **_RETRY)
def draft_ticket(ticket_id: int) -> None:
    """Draft the reply to a ticket."""
    stored = pipeline.draft_tickets([ticket_id])
    logger.info("support.draft ticket_id=%s stored=%d", ticket_id, stored)
