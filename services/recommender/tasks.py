"""Celery tasks of the recommender queue; the model loads on the first task in each child."""

from __future__ import annotations

from typing import Any

from celery.utils.log import get_task_logger
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from services.recommender.batch import compute_chunk
from shared.worker import DiptychTask, get_celery_app

__all__ = ["recommend_chunk"]

logger = get_task_logger(__name__)
app = get_celery_app()

# A dropped database or broker connection is retried with backoff; any other
# error is a bug or bad data, which a retry would only repeat.
_RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, RedisConnectionError),
    "retry_backoff": True,
    "max_retries": 5,
}


@app.task(name="recommender.recommend_chunk", base=DiptychTask, **_RETRY)
def recommend_chunk(run_id: str, user_ids: list[int], top_n: int) -> int:
    """Write the lists of one chunk of users in a batch run."""
    written = compute_chunk(run_id, user_ids, top_n)
    logger.info(
        "recommender.recommend_chunk run_id=%s users=%d written=%d", run_id, len(user_ids), written
    )
    return written
