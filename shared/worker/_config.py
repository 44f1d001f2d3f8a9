"""Celery configuration derived from the Diptych settings."""

from __future__ import annotations

import importlib.metadata
from typing import Any, get_args

from kombu import Exchange, Queue

from shared.errors import ConfigurationError
from shared.settings import Settings, WorkerQueue, WorkerSettings

TASK_QUEUES: tuple[str, ...] = get_args(WorkerQueue)
DEFAULT_QUEUE = "default"
TASK_MODULES_GROUP = "diptych.tasks"

_REDIS_SCHEMES = ("redis", "rediss", "unix")


def find_task_modules(settings: Settings) -> list[str]:
    """List the task modules a worker imports.

    Args:
        settings: The settings whose `worker.extra_task_modules` are appended.

    Returns:
        The modules of the `diptych.tasks` entry points, then the extra modules,
        without repeats.
    """
    names = [entry.module for entry in importlib.metadata.entry_points(group=TASK_MODULES_GROUP)]
    names.extend(settings.worker.extra_task_modules)
    return list(dict.fromkeys(names))


def resolve_redis_url(settings: Settings) -> str | None:
    """Return the Redis URL for delivery counters and dead letters.

    Args:
        settings: The settings to read `redis_url` and `broker_url` from.

    Returns:
        `redis_url`, else `broker_url`, or ``None`` when neither is set (the
        embedded layout, where tasks run in-process and are never redelivered).

    Raises:
        ConfigurationError: If the chosen URL is not a Redis URL.
    """
    url = settings.redis_url or settings.broker_url
    if not url:
        return None
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _REDIS_SCHEMES:
        raise ConfigurationError(
            f"The worker keeps delivery counts and dead letters in Redis, but the "
            f"broker URL has the scheme {scheme!r}; set DIPTYCH_REDIS_URL to a "
            f"redis:// URL or use Redis as the broker."
        )
    return url


def build_task_routes() -> dict[str, dict[str, str]]:
    """Map each task-name prefix to its queue: `support.*` goes to `support`, and so on."""
    return {f"{queue}.*": {"queue": queue} for queue in TASK_QUEUES}


def build_task_queues(worker: WorkerSettings) -> list[Queue]:
    """Declare the queues a worker consumes when started without `-Q`, plus `default`."""
    names = [*worker.queues, DEFAULT_QUEUE]
    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in names]


def build_transport_options(worker: WorkerSettings) -> dict[str, Any]:
    """Build the Redis transport options that bring back messages of dead workers."""
    # kombu 5.7 returns an unacknowledged message older than the visibility
    # timeout to its queue only during a sweep, by default every 100 s
    # (interval 10 s times throttle 10). Sweeping every tenth of the timeout,
    # between 1 s and 10 s, brings such a message back soon after the timeout.
    sweep_interval_s = min(10.0, max(1.0, worker.visibility_timeout_s / 10))
    return {
        "visibility_timeout": worker.visibility_timeout_s,
        "unacked_restore_interval": sweep_interval_s,
        "unacked_restore_throttle": 1,
    }


def build_celery_config(settings: Settings) -> dict[str, Any]:
    """Build the Celery configuration for `settings`.

    Args:
        settings: The Diptych settings; `broker_url` and the `worker` section are read.

    Returns:
        A mapping of Celery setting names to values, for `Celery.conf.update`.
    """
    worker = settings.worker
    return {
        # Without a broker URL tasks run in-process (see `submit`); the memory
        # transport keeps a stray `delay()` from connecting anywhere.
        "broker_url": settings.broker_url or "memory://",
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": build_transport_options(worker),
        # Tasks write their results to the database, so there is no result backend.
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "enable_utc": True,
        "timezone": "UTC",
        # A message is acknowledged after its task returns and is requeued when the
        # child process running it dies, so a crashed task is delivered again.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": worker.prefetch_multiplier,
        "worker_concurrency": worker.concurrency,
        "task_soft_time_limit": worker.soft_time_limit_s,
        "task_time_limit": worker.time_limit_s,
        "task_default_queue": DEFAULT_QUEUE,
        "task_queues": build_task_queues(worker),
        "task_routes": build_task_routes(),
        # Task events in the format Flower reads.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # After a lost broker connection the broker may deliver a late-acknowledged
        # message again; stopping the running copy avoids two copies at once.
        # Celery 5.7 warns that this becomes the default in Celery 6.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }
