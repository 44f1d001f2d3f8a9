"""Queue lengths and dead-letter counts, read from Redis for metrics and autoscaling."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared.settings import Settings, get_settings
from shared.worker._config import DEFAULT_QUEUE, TASK_QUEUES, resolve_redis_url
from shared.worker.redelivery import DEAD_LETTER_KEY_PREFIX

__all__ = ["QueueStats", "read_queue_stats"]

# kombu's Redis transport keeps one list per queue and priority step. Messages
# without a priority go to the list named after the queue; the others to
# "<queue>\x06\x16<step>" for the steps 3, 6 and 9.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


@dataclass(frozen=True)
class QueueStats:
    """Messages waiting in one queue, and how many went to its dead-letter list."""

    queue: str
    waiting: int
    dead_letters: int


def read_queue_stats(settings: Settings | None = None) -> list[QueueStats]:
    """Return the waiting and dead-lettered message counts of every queue.

    Returns:
        One row per queue (the service queues, then ``default``); an empty list
        in the embedded layout, where there is no broker.

    Raises:
        redis.RedisError: If Redis cannot be reached.
    """
    settings = settings or get_settings()
    counters_url = resolve_redis_url(settings)
    if counters_url is None:
        return []
    # The queues are lists in the broker's database; the dead letters live where
    # the delivery counters are (DIPTYCH_REDIS_URL when set), which may differ.
    broker_url = settings.broker_url or counters_url
    if broker_url.split("://", 1)[0].lower() not in ("redis", "rediss"):
        broker_url = counters_url
    queues = (*TASK_QUEUES, DEFAULT_QUEUE)
    waiting = _count_lists(
        broker_url,
        [
            [queue, *(f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS)]
            for queue in queues
        ],
    )
    dead = _count_lists(counters_url, [[DEAD_LETTER_KEY_PREFIX + queue] for queue in queues])
    return [
        QueueStats(queue=queue, waiting=waiting[i], dead_letters=dead[i])
        for i, queue in enumerate(queues)
    ]


def _count_lists(url: str, groups: list[list[str]]) -> list[int]:
    """Return the summed lengths of each group of Redis lists, in one round trip."""
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        pipe = client.pipeline(transaction=False)
        for keys in groups:
            for key in keys:
                pipe.llen(key)
        counts = iter(pipe.execute())
    return [sum(next(counts) for _key in keys) for keys in groups]
