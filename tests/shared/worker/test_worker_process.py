"""Real Celery workers on the real Redis: exactly-once runs, crash recovery and dead letters."""

from __future__ import annotations

import datetime
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from shared.worker import list_dead_letters, submit
from tests._celery import WorkerProcess, build_worker_env, wait_until
from tests.shared.worker import sample_tasks

TASK_MODULE = "tests.shared.worker.sample_tasks"
# Generous, because other test runs may share the machine's two cores.
TIMEOUT_S = 90.0
# Celery 5.7's prefork pool looks for dead children every 5 s (`AsynPool.timers`),
# so each delivery of the poison task adds up to 5 s to the test.
MAX_DELIVERIES = 2

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def client(celery_broker_url: str) -> Iterator[redis.Redis]:
    """A client of the test's Redis database that returns strings."""
    with redis.Redis.from_url(celery_broker_url, decode_responses=True) as connection:
        yield connection


def _worker_env(broker_url: str, tmp_path: Path, **worker: float | int) -> dict[str, str]:
    return build_worker_env(
        broker_url=broker_url,
        home=tmp_path / "worker-home",
        task_modules=[TASK_MODULE],
        worker=worker,
    )


def _started(client: redis.Redis) -> list[str]:
    return [str(key) for key in client.lrange(sample_tasks.STARTED_KEY, 0, -1)]


def _in_flight(client: redis.Redis) -> set[str]:
    return set(_started(client)) - set(client.smembers(sample_tasks.DONE_KEY))


def _is_drained(client: redis.Redis) -> bool:
    """Return whether no message is queued or delivered but unacknowledged."""
    return client.llen("default") == 0 and client.hlen("unacked") == 0


def test_run_each_task_exactly_once(
    celery_broker_url: str, start_worker: StartWorker, client: redis.Redis, tmp_path: Path
) -> None:
    """Twenty submitted tasks each run once: none lost, none repeated, no counter left."""
    worker = start_worker(env=_worker_env(celery_broker_url, tmp_path, torch_threads=2))
    keys = [f"task-{index:02d}" for index in range(20)]

    task_ids = [submit(sample_tasks.record, key, 0.05) for key in keys]

    wait_until(
        lambda: client.scard(sample_tasks.DONE_KEY) == len(keys) and _is_drained(client),
        timeout_s=TIMEOUT_S,
        message=lambda: f"done {client.smembers(sample_tasks.DONE_KEY)}; log:\n{worker.log}",
    )
    assert len(set(task_ids)) == len(keys)
    assert sorted(_started(client)) == keys
    assert sorted(client.lrange(sample_tasks.COMPLETED_KEY, 0, -1)) == keys
    assert client.keys("diptych:deliveries:*") == []
    assert list_dead_letters("default") == []
    # The pool child received the thread setting from the worker signals.
    assert client.get(sample_tasks.THREADS_KEY) == "2"


def test_list_pool_children_without_psutil(
    celery_broker_url: str,
    start_worker: StartWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The harness finds the same pool processes through /proc as through psutil."""
    worker = start_worker(env=_worker_env(celery_broker_url, tmp_path), concurrency=2)
    wait_until(
        lambda: len(worker.child_pids()) == 2,
        timeout_s=TIMEOUT_S,
        message=lambda: f"children {worker.child_pids()}; log:\n{worker.log}",
    )
    with_psutil = sorted(worker.child_pids())

    # A None entry in sys.modules makes `import psutil` raise ImportError.
    monkeypatch.setitem(sys.modules, "psutil", None)
    without_psutil = sorted(worker.child_pids())

    assert without_psutil == with_psutil


def test_recover_tasks_after_worker_killed(
    celery_broker_url: str, start_worker: StartWorker, client: redis.Redis, tmp_path: Path
) -> None:
    """A worker killed with SIGKILL mid-task loses nothing: a new worker finishes every task."""
    # Given a short visibility timeout, so the killed worker's message comes back soon.
    env = _worker_env(
        celery_broker_url, tmp_path, visibility_timeout_s=5, soft_time_limit_s=3, time_limit_s=4
    )
    doomed = start_worker(env=env, name="doomed")
    keys = [f"task-{index}" for index in range(8)]
    for key in keys:
        submit(sample_tasks.record, key, 0.8)

    # When the whole worker is killed while a task is running...
    wait_until(
        lambda: client.scard(sample_tasks.DONE_KEY) >= 1 and bool(_in_flight(client)),
        timeout_s=TIMEOUT_S,
        message=lambda: f"no task in flight; log:\n{doomed.log}",
    )
    children = doomed.child_pids()
    doomed.kill(signal.SIGKILL)
    interrupted = _in_flight(client)
    assert children, "the worker had no pool process to kill"
    assert interrupted, "the kill landed between two tasks"
    assert not doomed.is_running()

    # ...then a new worker runs the rest and, after the visibility timeout, the
    # interrupted task again.
    replacement = start_worker(env=env, name="replacement")
    wait_until(
        lambda: client.scard(sample_tasks.DONE_KEY) == len(keys) and _is_drained(client),
        timeout_s=TIMEOUT_S,
        message=lambda: f"done {client.smembers(sample_tasks.DONE_KEY)}; log:\n{replacement.log}",
    )
    started = _started(client)
    assert sorted(set(started)) == keys
    for key in interrupted:
        assert started.count(key) == 2, f"{key} should have run once per worker"


def test_dead_letter_poison_task(
    celery_broker_url: str, start_worker: StartWorker, client: redis.Redis, tmp_path: Path
) -> None:
    """A task that kills its process runs `max_deliveries` times, then goes to the dead letters."""
    env = _worker_env(celery_broker_url, tmp_path, max_deliveries=MAX_DELIVERIES)
    worker = start_worker(env=env)

    poison_id = submit(sample_tasks.crash, "poison")
    keys = [f"task-{index}" for index in range(4)]
    for key in keys:
        submit(sample_tasks.record, key, 0.05)

    wait_until(
        lambda: (
            client.scard(sample_tasks.DONE_KEY) == len(keys)
            and bool(list_dead_letters("default"))
            and _is_drained(client)
        ),
        timeout_s=TIMEOUT_S,
        message=lambda: f"started {_started(client)}; log:\n{worker.log}",
    )
    [letter] = list_dead_letters("default")
    assert letter["id"] == poison_id
    assert letter["task"] == "worker_tests.crash"
    assert letter["args"] == ["poison"]
    assert letter["kwargs"] == {}
    assert letter["deliveries"] == MAX_DELIVERIES + 1
    assert letter["queue"] == "default"
    assert datetime.datetime.fromisoformat(letter["time"]).utcoffset() == datetime.timedelta(0)
    assert _started(client).count("poison") == MAX_DELIVERIES
    assert sorted(set(_started(client)) - {"poison"}) == keys
    error_lines = [line for line in worker.log.splitlines() if f"id={poison_id}" in line]
    assert any("ERROR" in line and "dead-letter" in line for line in error_lines)
