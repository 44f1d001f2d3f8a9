"""Celery tasks of the recommender queue; the model loads on the first task in each child."""

from __future__ import annotations

import datetime as dt

from celery.utils.log import get_task_logger

from services.recommender.batch import compute_chunk, fan_out_batch, finish_if_complete
from shared.settings import get_settings
from shared.worker import RETRY_ON_CONNECTION_LOSS, DiptychTask, get_celery_app
from shared.worker.schedule import ScheduledTask

__all__ = ["SCHEDULES", "recommend_chunk", "start_nightly_batch"]

SCHEDULES = [
    ScheduledTask(
        name="recommender-nightly-batch",
        task="recommender.start_nightly_batch",
        cron="0 2 * * *",
        description="Write every user's top-N under the run id nightly-<UTC date>.",
    )
]

logger = get_task_logger(__name__)
app = get_celery_app()


@app.task(name="recommender.recommend_chunk", base=DiptychTask, **RETRY_ON_CONNECTION_LOSS)
def recommend_chunk(run_id: str, user_ids: list[int], top_n: int) -> int:
    """Write the lists of one chunk of users in a batch run."""
    written = compute_chunk(run_id, user_ids, top_n)
    finished = finish_if_complete(run_id)
    logger.info(
        "recommender.recommend_chunk run_id=%s users=%d written=%d run_finished=%s",
        run_id,
        len(user_ids),
        written,
        finished,
    )
    return written


@app.task(name="recommender.start_nightly_batch", base=DiptychTask, **RETRY_ON_CONNECTION_LOSS)
def start_nightly_batch(top_n: int | None = None) -> str:
    """Queue the day's batch run; a second delivery the same day resumes the same run."""
    settings = get_settings().recommender
    run_id = f"nightly-{dt.datetime.now(dt.UTC):%Y-%m-%d}"
    queued = fan_out_batch(run_id, top_n=top_n or settings.top_n, chunk_size=settings.chunk_size)
    logger.info("recommender.start_nightly_batch run_id=%s queued_users=%d", run_id, queued)
    return run_id
