"""Hand tickets to the pipeline: Celery tasks in production, this process otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from services.support.pipeline import process_tickets
from shared.worker import is_distributed

__all__ = ["enqueue_tickets"]

logger = logging.getLogger(__name__)


class _Background(Protocol):
    def add_task(self, func: Callable[..., Any], *args: Any) -> None: ...


def enqueue_tickets(ticket_ids: Sequence[int], *, background: _Background | None = None) -> None:
    """Start the pipeline for stored tickets.

    With a broker configured, each ticket's first task goes to the `support`
    queue and each step submits the next. Without one, the steps run in this
    process: after the response when `background` (FastAPI's background tasks)
    is given, otherwise right away.
    """
    ids = list(ticket_ids)
    if is_distributed():
        from services.support.tasks import triage_ticket

        for ticket_id in ids:
            triage_ticket.apply_async(args=(ticket_id,))
        logger.info("tickets queued count=%d", len(ids))
    elif background is not None:
        background.add_task(process_tickets, ids)
    else:
        process_tickets(ids)
