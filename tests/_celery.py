"""Fixtures and helpers that run real Celery workers against a real Redis.

`celery_redis_url` gives a test an empty Redis database; `start_worker` starts
``celery -A shared.worker.app worker`` processes (or ``diptych worker``, the
command operators run) and stops them after the test. Redis must be reachable
(127.0.0.1:6379, or DIPTYCH_TEST_REDIS_URL): these fixtures fail rather than
skip, so that missing Redis is noticed.

Example::

    def test_run_task(celery_redis_url, start_worker, tmp_path):
        env = build_worker_env(broker_url=celery_redis_url, home=tmp_path / "home")
        worker = start_worker(env=env, queues=["default"])
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import pytest
import redis

from shared.settings import reset_settings
from shared.worker import reset_celery_app

__all__ = [
    "WorkerProcess",
    "build_worker_env",
    "celery_broker_url",
    "celery_redis_reservation",
    "celery_redis_url",
    "process_environment",
    "spawn_process",
    "start_worker",
    "wait_until",
]

REDIS_BASE_URL = os.environ.get("DIPTYCH_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
# Databases 0-9 are left to development and production use on a shared Redis.
TEST_DATABASES = range(10, 16)
RESERVATION_KEY = "diptych-test:reserved-by"
# The reservation is renewed by every test that uses the database, so a crashed
# session frees its database at most this long after its last worker test.
RESERVATION_TTL_S = 3600
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]

# Checking, flushing and re-reserving in one script keeps another session from
# taking the database between the steps. It returns 0, flushing nothing, when
# another session holds the reservation (ours expired and was taken).
_FLUSH_AND_RESERVE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
    return 0
end
redis.call('FLUSHDB')
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
_FLUSH_AND_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('FLUSHDB')
end
return 1
"""


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout_s: float,
    message: Callable[[], str] | str,
    interval_s: float = 0.1,
) -> None:
    """Poll `predicate` until it returns true; fail the test after `timeout_s` seconds.

    Args:
        predicate: The condition to wait for.
        timeout_s: Seconds to wait before failing.
        message: The failure message, or a function that builds it (to include logs).
        interval_s: Seconds between polls.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout_s} s: {text}")
        time.sleep(interval_s)


def _reserve_database(token: str) -> str:
    for database in TEST_DATABASES:
        url = f"{REDIS_BASE_URL}/{database}"
        with redis.Redis.from_url(url, socket_connect_timeout=5) as client:
            try:
                reserved = client.set(RESERVATION_KEY, token, nx=True, ex=RESERVATION_TTL_S)
            except redis.ConnectionError as exc:
                pytest.fail(
                    f"Redis at {REDIS_BASE_URL} is required for the worker tests but not "
                    f"reachable ({exc}); start redis-server or set DIPTYCH_TEST_REDIS_URL."
                )
        if reserved:
            _flush_reserved_database(url, token)
            return url
    pytest.fail(
        f"Redis databases {TEST_DATABASES.start}-{TEST_DATABASES.stop - 1} at "
        f"{REDIS_BASE_URL} are all reserved by other test sessions (key "
        f"{RESERVATION_KEY!r}); wait for them to finish or delete the key."
    )


@pytest.fixture(scope="session")
def celery_redis_reservation() -> Iterator[tuple[str, str]]:
    """A Redis database in 10-15 reserved for this test session: (url, reservation token)."""
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    url = _reserve_database(token)
    yield url, token
    with redis.Redis.from_url(url) as client:
        client.eval(_FLUSH_AND_RELEASE, 1, RESERVATION_KEY, token)


@pytest.fixture
def celery_redis_url(celery_redis_reservation: tuple[str, str]) -> Iterator[str]:
    """URL of this session's Redis database, flushed before and after the test."""
    url, token = celery_redis_reservation
    _flush_reserved_database(url, token)
    yield url
    _flush_reserved_database(url, token)


def _flush_reserved_database(url: str, token: str) -> None:
    with redis.Redis.from_url(url) as client:
        flushed = client.eval(_FLUSH_AND_RESERVE, 1, RESERVATION_KEY, token, RESERVATION_TTL_S)
    if not flushed:
        pytest.fail(
            f"Redis database {url} was reserved by another test session after this "
            f"session's reservation expired; run the tests again."
        )


@pytest.fixture
def celery_broker_url(celery_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`celery_redis_url`, also set as this process's DIPTYCH_BROKER_URL so `submit` uses it."""
    monkeypatch.setenv("DIPTYCH_BROKER_URL", celery_redis_url)
    reset_settings()
    yield celery_redis_url
    # Closes the broker connections that `submit` opened through the app.
    reset_celery_app()


def build_worker_env(
    *,
    broker_url: str,
    home: Path,
    database_url: str | None = None,
    task_modules: Sequence[str] = (),
    worker: Mapping[str, float | int | str] | None = None,
) -> dict[str, str]:
    """Build the DIPTYCH_ environment of a worker process.

    Args:
        broker_url: The Redis URL, for example from `celery_redis_url`.
        home: The worker's DIPTYCH_HOME.
        database_url: DIPTYCH_DATABASE_URL; ``None`` leaves SQLite under `home`.
        task_modules: Modules for `worker.extra_task_modules`.
        worker: Other fields of `WorkerSettings` by name, such as
            ``{"visibility_timeout_s": 5}``.

    Returns:
        The variables to pass to `start_worker` as `env`.
    """
    env = {
        "DIPTYCH_BROKER_URL": broker_url,
        "DIPTYCH_HOME": str(home),
        "DIPTYCH_WORKER__EXTRA_TASK_MODULES": json.dumps(list(task_modules)),
    }
    if database_url is not None:
        env["DIPTYCH_DATABASE_URL"] = database_url
    for name, value in (worker or {}).items():
        env[f"DIPTYCH_WORKER__{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    """A running worker process group (a Celery worker or a stream consumer) and its log."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        """Process id of the worker's main process."""
        return self.process.pid

    @property
    def log(self) -> str:
        """Everything the worker wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def is_running(self) -> bool:
        """Return whether the main process has not exited."""
        return self.process.poll() is None

    def child_pids(self) -> list[int]:
        """Return the process ids of the worker's descendants (its pool processes)."""
        try:
            import psutil
        except ImportError:
            return _read_child_pids(self.pid)
        try:
            return [child.pid for child in psutil.Process(self.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` to the whole worker at once, main process and pool children."""
        # The worker runs in its own session, so its process group contains the
        # main process and every child it forked.
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the worker with SIGTERM (warm shutdown), then SIGKILL after `timeout_s`."""
        if self.is_running():
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
        # Children left behind by a killed main process would keep consuming.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)


def _read_child_pids(pid: int) -> list[int]:
    found: list[int] = []
    for children_file in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            direct = [int(text) for text in children_file.read_text().split()]
        except OSError:
            continue
        for child in direct:
            found.append(child)
            found.extend(_read_child_pids(child))
    return found


def _worker_command(
    name: str, queues: Sequence[str], concurrency: int, launcher: Literal["celery", "diptych"]
) -> list[str]:
    if launcher == "diptych":
        # `diptych worker` builds the same app and hands these options to Celery,
        # with mingle and gossip left on as operators run it.
        return [
            sys.executable,
            "-m",
            "pipelines.cli",
            "worker",
            "--queues",
            ",".join(queues),
            "--node-name",
            f"{name}@%h",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
        ]
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "shared.worker.app",
        "worker",
        "-Q",
        ",".join(queues),
        "-n",
        f"{name}@%h",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]


def spawn_process(
    name: str, command: Sequence[str], log_path: Path, env: Mapping[str, str]
) -> WorkerProcess:
    """Start `command` from the repository root in its own session, logging to `log_path`."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            list(command),
            cwd=REPOSITORY_ROOT,
            env=process_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(name, process, log_path)


def process_environment(env: Mapping[str, str]) -> dict[str, str]:
    """Return this process's environment for a child process: offline, unbuffered, `env` on top."""
    merged = dict(os.environ)
    merged.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPOSITORY_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }
    )
    merged.update(env)
    return merged


def _wait_until_ready(worker: WorkerProcess, timeout_s: float) -> None:
    ready_line = re.compile(rf"{re.escape(worker.name)}@\S+ ready\.")
    deadline = time.monotonic() + timeout_s
    while not ready_line.search(worker.log):
        if not worker.is_running():
            pytest.fail(
                f"worker {worker.name} exited with status {worker.process.returncode} "
                f"before it was ready; log:\n{worker.log}"
            )
        if time.monotonic() > deadline:
            worker.stop(timeout_s=5)
            pytest.fail(f"worker {worker.name} not ready after {timeout_s} s; log:\n{worker.log}")
        time.sleep(0.1)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """A factory that starts real Celery workers; every worker is stopped after the test.

    The factory takes `env` (variables added to this process's environment,
    see `build_worker_env`), `queues` (default ``["default"]``), `name`,
    `concurrency` (default 1), `ready_timeout_s` (default 90) and `launcher`
    (``"celery"``, the default, or ``"diptych"`` for ``python -m pipelines.cli
    worker``), and returns a `WorkerProcess` once the worker logs that it is ready.
    """
    workers: list[WorkerProcess] = []

    def start(
        *,
        env: Mapping[str, str],
        queues: Sequence[str] = ("default",),
        name: str | None = None,
        concurrency: int = 1,
        ready_timeout_s: float = 90.0,
        launcher: Literal["celery", "diptych"] = "celery",
    ) -> WorkerProcess:
        name = name or f"worker{len(workers) + 1}"
        command = _worker_command(name, queues, concurrency, launcher)
        worker = spawn_process(name, command, tmp_path / f"celery-{name}.log", env)
        workers.append(worker)
        _wait_until_ready(worker, ready_timeout_s)
        return worker

    yield start
    for worker in workers:
        worker.stop()
