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
    url = resolve_redis_url(settings or get_settings())
    if url is None:
        return []
    queues = (*TASK_QUEUES, DEFAULT_QUEUE)
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{queue}{_PRIORITY_SEPARATOR}{step}")
            pipe.llen(DEAD_LETTER_KEY_PREFIX + queue)
        counts = pipe.execute()
    width = len(_PRIORITY_STEPS) + 2
    return [
        QueueStats(
            queue=queue,
            waiting=sum(counts[i * width : i * width + width - 1]),
            dead_letters=counts[i * width + width - 1],
        )
        for i, queue in enumerate(queues)
    ]
