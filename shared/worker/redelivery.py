"""Bounded redelivery: a task base class that moves poison messages to a dead-letter list.

The worker acknowledges a message only after its task returns and puts it back
in its queue when the child process running it dies. A task that kills its
process on every run would therefore be delivered forever. `DiptychTask`
counts the deliveries of each task id in Redis and, once the count exceeds
`worker.max_deliveries`, records the message in the Redis list
``diptych:dead-letter:<queue>`` and rejects it without running it again.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, TypedDict

import redis
from celery import Task
from celery.exceptions import Reject
from kombu.utils.json import dumps, loads
from sqlalchemy.exc import OperationalError

from shared.settings import Settings, get_settings
from shared.worker._config import DEFAULT_QUEUE, TASK_QUEUES, resolve_redis_url

__all__ = [
    "DEAD_LETTER_KEY_PREFIX",
    "DELIVERY_KEY_PREFIX",
    "RETRY_ON_CONNECTION_LOSS",
    "DeadLetter",
    "DiptychTask",
    "list_dead_letters",
]

# Task options for `app.task(**RETRY_ON_CONNECTION_LOSS)`: a dropped database or
# broker connection is retried with backoff. Any other error is a bug or bad data,
# so a retry would only repeat it.
RETRY_ON_CONNECTION_LOSS: dict[str, Any] = {
    "autoretry_for": (OperationalError, redis.ConnectionError),
    "retry_backoff": True,
    "max_retries": 5,
}

logger = logging.getLogger(__name__)

DELIVERY_KEY_PREFIX = "diptych:deliveries:"
DEAD_LETTER_KEY_PREFIX = "diptych:dead-letter:"

# A counter is deleted when its task returns. The expiry removes counters of
# messages that never finished, and a week outlasts workers down over a weekend.
_DELIVERY_COUNTER_TTL_S = 7 * 24 * 3600

_clients: dict[str, redis.Redis] = {}


class DeadLetter(TypedDict):
    """A task message that was delivered more than `worker.max_deliveries` times."""

    task: str
    id: str
    args: list[Any]
    kwargs: dict[str, Any]
    deliveries: int
    queue: str
    time: str


class DiptychTask(Task):
    """Base class of Diptych tasks: late acknowledgement with bounded redelivery.

    Use it as ``@app.task(base=DiptychTask, name="support.triage_ticket")``. A
    message runs at most `worker.max_deliveries` times. The delivery after that
    goes to the dead-letter list of its queue (see `list_dead_letters`) and is
    removed from the broker. Tasks must be idempotent, because a message whose
    worker died mid-run is delivered again.

    Calls that do not come from a broker message (a direct call, eager mode,
    `submit` without a broker) are not counted.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._is_broker_delivery():
            return super().__call__(*args, **kwargs)
        settings = get_settings()
        deliveries = self._count_delivery(settings)
        if deliveries is not None and deliveries > settings.worker.max_deliveries:
            queue = self._record_dead_letter(settings, deliveries, args, kwargs)
            raise Reject(f"moved to the dead-letter list of queue {queue!r}", requeue=False)
        return super().__call__(*args, **kwargs)

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Any,
        kwargs: Any,
        einfo: Any,
    ) -> None:
        """Delete the delivery counter: the message is acknowledged after this returns."""
        if self._is_broker_delivery():
            self._forget_deliveries(task_id)
        super().after_return(status, retval, task_id, args, kwargs, einfo)

    def on_retry(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Delete the delivery counter, because a retry is a new message with the same id."""
        if self._is_broker_delivery():
            self._forget_deliveries(task_id)
        super().on_retry(exc, task_id, args, kwargs, einfo)

    def _is_broker_delivery(self) -> bool:
        request = self.request
        return bool(request.id) and not request.called_directly and not request.is_eager

    def _count_delivery(self, settings: Settings) -> int | None:
        """Count this delivery; returns ``None`` when Redis cannot be reached."""
        key = DELIVERY_KEY_PREFIX + self.request.id
        try:
            pipe = _get_client(settings).pipeline()
            pipe.incr(key)
            pipe.expire(key, _DELIVERY_COUNTER_TTL_S)
            deliveries, _ = pipe.execute()
        except redis.RedisError as exc:
            # Running without the bound is better than failing every task while
            # the Redis that stores the counters is down.
            logger.error(
                "delivery count failed, running without the redelivery bound "
                "task=%s id=%s error=%r",
                self.name,
                self.request.id,
                exc,
            )
            return None
        return int(deliveries)

    def _record_dead_letter(
        self, settings: Settings, deliveries: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str:
        delivery_info = self.request.delivery_info or {}
        queue = delivery_info.get("routing_key") or DEFAULT_QUEUE
        record: DeadLetter = {
            "task": self.name,
            "id": self.request.id,
            "args": list(args),
            "kwargs": kwargs,
            "deliveries": deliveries,
            "queue": queue,
            "time": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        _get_client(settings).rpush(DEAD_LETTER_KEY_PREFIX + queue, dumps(record))
        logger.error(
            "task moved to the dead-letter list task=%s id=%s deliveries=%d queue=%s",
            self.name,
            self.request.id,
            deliveries,
            queue,
        )
        return queue

    def _forget_deliveries(self, task_id: str) -> None:
        try:
            _get_client(get_settings()).delete(DELIVERY_KEY_PREFIX + task_id)
        except redis.RedisError as exc:
            # The counter expires on its own; a leftover one only matters if the
            # same message is delivered again.
            logger.warning("delivery counter not deleted id=%s error=%r", task_id, exc)


def list_dead_letters(queue: str, *, settings: Settings | None = None) -> list[DeadLetter]:
    """Return the dead-lettered messages of one queue, oldest first.

    Args:
        queue: One of ``support``, ``sentiment``, ``recommender``, ``training``
            or ``default``.
        settings: The settings that name Redis; ``None`` uses `get_settings()`.

    Returns:
        The records, or an empty list in the embedded layout (no broker), where
        tasks run in-process and are never redelivered.

    Raises:
        ValueError: If `queue` is not one of the Diptych queues.
    """
    known = (*TASK_QUEUES, DEFAULT_QUEUE)
    if queue not in known:
        raise ValueError(f"`queue` must be one of {', '.join(known)}, got {queue!r}.")
    url = resolve_redis_url(settings or get_settings())
    if url is None:
        return []
    with redis.Redis.from_url(url) as client:
        raw_records = client.lrange(DEAD_LETTER_KEY_PREFIX + queue, 0, -1)
    return [loads(raw) for raw in raw_records]


def _get_client(settings: Settings) -> redis.Redis:
    url = resolve_redis_url(settings)
    if url is None:
        raise RuntimeError("a broker delivery arrived although no broker URL is configured")
    # redis-py's connection pool compares process ids and opens new connections
    # after a fork, so one client per URL is safe in prefork children.
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    return client
