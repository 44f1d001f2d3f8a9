"""Tasks for the worker tests, imported by workers through `worker.extra_task_modules`.

Their names have no service prefix, so they are routed to the `default` queue.
Runs are recorded in the broker's Redis database: every start is appended to
`STARTED_KEY`, and every finished run adds its key to the set `DONE_KEY` and
appends it to `COMPLETED_KEY`, so that duplicates and losses both show.
`record` also stores the child's OMP_NUM_THREADS under `THREADS_KEY`.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path
from typing import Any

import redis

from shared.settings import get_settings
from shared.worker import DiptychTask
from shared.worker.app import app

STARTED_KEY = "worker-tests:started"
COMPLETED_KEY = "worker-tests:completed"
DONE_KEY = "worker-tests:done"
THREADS_KEY = "worker-tests:omp-num-threads"


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def _broker_client() -> redis.Redis:
    url = get_settings().broker_url
    if not url:
        raise RuntimeError("the recording sample tasks need DIPTYCH_BROKER_URL")
    return _client(url)


@app.task(base=DiptychTask, name="worker_tests.record")
def record(key: str, duration_s: float = 0.1) -> None:
    """Record a start, sleep `duration_s` so that a kill can land mid-run, record the end."""
    client = _broker_client()
    client.rpush(STARTED_KEY, key)
    client.set(THREADS_KEY, os.environ.get("OMP_NUM_THREADS", "unset"))
    time.sleep(duration_s)
    pipe = client.pipeline()
    pipe.sadd(DONE_KEY, key)
    pipe.rpush(COMPLETED_KEY, key)
    pipe.execute()


@app.task(base=DiptychTask, name="worker_tests.crash")
def crash(key: str) -> None:
    """Record a start, then kill the process running the task, as a poison message does."""
    _broker_client().rpush(STARTED_KEY, key)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(base=DiptychTask, bind=True, name="worker_tests.write_request")
def write_request(self: Any, path: str, payload: Any) -> None:
    """Write the task id and the received payload's type name to `path`."""
    Path(path).write_text(f"{self.request.id} {type(payload).__name__}")


@app.task(base=DiptychTask, name="worker_tests.fail")
def fail(reason: str) -> None:
    """Raise RuntimeError with `reason`."""
    raise RuntimeError(reason)
