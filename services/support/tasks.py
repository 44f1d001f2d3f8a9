"""Celery tasks of the support queue: one per pipeline step, each submitting the next.

Tasks are thin: the steps in `services.support.pipeline` do the work and skip
what is already stored, so a task delivered twice (late acknowledgement after
a killed worker) changes nothing the second time. Models load on the first
task in each worker child, never at import.
"""

from __future__ import annotations

from celery.utils.log import get_task_logger

from services.support import pipeline
from shared.worker import RETRY_ON_CONNECTION_LOSS, DiptychTask, get_celery_app

__all__ = ["draft_ticket", "retrieve_ticket", "triage_ticket"]

logger = get_task_logger(__name__)
app = get_celery_app()


@app.task(name="support.triage", base=DiptychTask, **RETRY_ON_CONNECTION_LOSS)
def triage_ticket(ticket_id: int) -> None:
    """Classify a ticket, then queue its retrieval."""
    pipeline.triage_tickets([ticket_id])
    retrieve_ticket.apply_async(args=(ticket_id,))


@app.task(name="support.retrieve", base=DiptychTask, **RETRY_ON_CONNECTION_LOSS)
def retrieve_ticket(ticket_id: int) -> None:
    """Retrieve a ticket's passages, then queue its draft."""
    pipeline.retrieve_tickets([ticket_id])
    draft_ticket.apply_async(args=(ticket_id,))


@app.task(name="support.draft", base=DiptychTask, **RETRY_ON_CONNECTION_LOSS)
def draft_ticket(ticket_id: int) -> None:
    """Draft the reply to a ticket."""
    stored = pipeline.draft_tickets([ticket_id])
    logger.info("support.draft ticket_id=%s stored=%d", ticket_id, stored)
