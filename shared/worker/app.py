"""The Diptych Celery app: one queue per service plus `training`, Redis as broker.

Start a worker with ``celery -A shared.worker.app worker -Q support``. Celery
looks up this module's `app` attribute, which is built on first access from
`get_settings()`, so importing the module reads no settings and opens no
connection.

Task modules must not load models at import time. The worker's main process
imports them before it forks its child processes, so a model loaded there is
copied into every child, and CUDA cannot be used in a child forked after the
parent initialized it. Load models on the first task a child runs.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from celery import Celery
from celery.signals import celeryd_init, worker_process_init

from shared.settings import Settings, get_settings
from shared.storage import dispose_engine
from shared.worker._config import build_celery_config, find_task_modules, resolve_redis_url

__all__ = ["create_celery_app", "get_celery_app", "reset_celery_app"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_current: tuple[Settings, Celery] | None = None


def create_celery_app(settings: Settings | None = None) -> Celery:
    """Build a Celery app configured from the Diptych settings.

    Args:
        settings: The settings to read; ``None`` uses `get_settings()`.

    Returns:
        A new app that includes the task modules of the `diptych.tasks` entry
        points and of `worker.extra_task_modules`. Creating it opens no connection.

    Raises:
        ConfigurationError: If a broker is configured but no Redis URL can be
            derived for delivery counters and dead letters.
    """
    settings = settings or get_settings()
    resolve_redis_url(settings)
    app = Celery("diptych", include=find_task_modules(settings), set_as_current=False)
    app.conf.update(build_celery_config(settings))
    return app


def get_celery_app() -> Celery:
    """Return this process's app, built from the current settings.

    The app is built on first use and again whenever `get_settings()` returns a
    new object (after `reset_settings`), so that a process whose settings
    changed publishes to the broker they now name. The previous app's broker
    connections are closed. The returned app is also Celery's default app.
    """
    global _current
    settings = get_settings()
    with _lock:
        if _current is not None and _current[0] is settings:
            return _current[1]
        previous = _current
        app = create_celery_app(settings)
        app.set_default()
        _current = (settings, app)
    if previous is not None:
        previous[1].close()
    return app


def reset_celery_app() -> None:
    """Close the current app's broker connections and forget it."""
    global _current
    with _lock:
        previous, _current = _current, None
    if previous is not None:
        previous[1].close()


def __getattr__(name: str) -> Celery:
    # `celery -A shared.worker.app` reads the `app` attribute; building it here
    # rather than at import keeps the import free of settings reads.
    if name == "app":
        return get_celery_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _set_thread_environment(torch_threads: int) -> None:
    # Torch, OpenMP and MKL read these when torch loads, so a child that
    # imports torch later starts with the right thread count.
    os.environ["OMP_NUM_THREADS"] = str(torch_threads)
    os.environ["MKL_NUM_THREADS"] = str(torch_threads)
    # The tokenizers library warns and disables its thread pool after a fork;
    # turning it off up front keeps one thread budget per child.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


@celeryd_init.connect
def _prepare_worker_process(**_: Any) -> None:
    """Set the thread environment in the worker's main process before task modules load."""
    _set_thread_environment(get_settings().worker.torch_threads)


@worker_process_init.connect
def _prepare_child_process(**_: Any) -> None:
    """Give a freshly forked child its own database pool and thread settings."""
    torch_threads = get_settings().worker.torch_threads
    _set_thread_environment(torch_threads)
    # A task module that imported torch in the main process has it loaded
    # already, where the environment variables come too late.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(torch_threads)
    # shared.storage drops inherited pools at fork without closing them; this
    # also closes any engine created in the child before this signal.
    dispose_engine()
    logger.debug("child process ready pid=%d torch_threads=%d", os.getpid(), torch_threads)
