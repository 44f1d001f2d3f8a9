"""Celery tasks of the training queue, and the core's beat entries."""

from __future__ import annotations

from typing import Any

from celery.utils.log import get_task_logger

from shared.worker import DiptychTask, get_celery_app
from shared.worker.schedule import ScheduledTask

__all__ = ["SCHEDULES", "check_candidates_task"]

logger = get_task_logger(__name__)
app = get_celery_app()

SCHEDULES = [
    ScheduledTask(
        name="training-check-candidates",
        task="training.check_candidates",
        cron="30 3 * * *",
        description="Promote each model's newest candidate when it beats production "
        "on held-out data.",
    )
]


@app.task(name="training.check_candidates", base=DiptychTask)
def check_candidates_task(
    names: list[str] | None = None, min_gain: float = 0.0
) -> list[dict[str, Any]]:
    """Compare candidates with production and promote those that beat it."""
    from pipelines.retraining import check_candidates

    decisions = check_candidates(names, min_gain=min_gain)
    promoted = [d.candidate for d in decisions if d.promoted]
    logger.info("training.check_candidates checked=%d promoted=%s", len(decisions), promoted)
    return [decision.__dict__ for decision in decisions]
