"""Submit tasks to Celery workers, or run them in-process when no broker is configured."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Task
from kombu.utils.json import dumps, loads

from shared.errors import ConfigurationError
from shared.settings import get_settings
from shared.worker.app import get_celery_app

__all__ = ["is_distributed", "submit"]

logger = logging.getLogger(__name__)


def is_distributed() -> bool:
    """Return whether tasks go to Celery workers, which is the case once a broker URL is set."""
    return bool(get_settings().broker_url)


def submit(task: Task, /, *args: Any, **kwargs: Any) -> str:
    """Run `task` on a worker, or in this process when no broker is configured.

    With a broker, the message goes to the task's queue (chosen by the
    task-name prefix) through the app for the current settings. Without one,
    the task runs now in this process, as a worker would run it: arguments
    pass through JSON, and an exception is logged, not raised.

    Args:
        task: A task registered on the Diptych app, usually with `base=DiptychTask`.
        *args: Positional arguments of the task; must be JSON-serializable.
        **kwargs: Keyword arguments of the task; must be JSON-serializable.

    Returns:
        The task id: Celery's in the distributed layout, a new UUID otherwise.

    Raises:
        TypeError: If an argument cannot be serialized to JSON (in-process only;
            Celery raises its own error for a broker).
        ConfigurationError: If no task named `task.name` is registered on the app.
    """
    if is_distributed():
        return _send_to_broker(task, args, kwargs)
    return _run_in_process(task, args, kwargs)


def _send_to_broker(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    app = get_celery_app()
    # Resolving by name lets a task object bound to an older app (built before
    # the settings changed) publish to the broker the settings name now.
    registered = app.tasks.get(task.name)
    if registered is None:
        raise ConfigurationError(
            f"Task {task.name!r} is not registered on the Diptych Celery app; define it "
            f"with `@app.task` using `app` from `shared.worker.app`, in a module the "
            f"worker imports."
        )
    result = registered.apply_async(args=args, kwargs=kwargs)
    logger.debug("task sent name=%s id=%s", task.name, result.id)
    return str(result.id)


def _run_in_process(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    task_id = str(uuid.uuid4())
    try:
        decoded_args, decoded_kwargs = loads(dumps([list(args), kwargs]))
    except TypeError as exc:
        raise TypeError(
            f"Arguments of task {task.name!r} must be JSON-serializable, because workers "
            f"receive them as JSON: {exc}"
        ) from exc
    task.push_request(id=task_id, args=decoded_args, kwargs=decoded_kwargs)
    try:
        task.run(*decoded_args, **decoded_kwargs)
    except Exception:
        # A worker logs a failed task and carries on; the in-process layout does
        # the same so that callers behave alike in both layouts.
        logger.exception("task failed in-process name=%s id=%s", task.name, task_id)
    else:
        logger.debug("task ran in-process name=%s id=%s", task.name, task_id)
    finally:
        task.pop_request()
    return task_id
