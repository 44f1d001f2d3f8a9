"""Worker settings validate themselves, and the Celery app is configured for safe redelivery."""

from __future__ import annotations

import importlib.metadata
import os
import re
import socket
from collections.abc import Iterator

import pytest
import torch
from pydantic import ValidationError

import shared.worker
import shared.worker.app as worker_app
from shared.errors import ConfigurationError
from shared.settings import Settings, WorkerSettings, get_settings, reset_settings
from shared.worker import create_celery_app, get_celery_app, reset_celery_app


@pytest.fixture(autouse=True)
def _forget_app() -> Iterator[None]:
    """Build each test's app from that test's settings."""
    reset_celery_app()
    yield
    reset_celery_app()


def test_default_worker_settings() -> None:
    """Defaults: one child, one torch thread, prefetch 1, 1 h visibility, 30/35 min limits."""
    worker = WorkerSettings()

    assert worker.concurrency == 1
    assert worker.torch_threads == 1
    assert worker.prefetch_multiplier == 1
    assert worker.visibility_timeout_s == 3600
    assert worker.soft_time_limit_s == 1800
    assert worker.time_limit_s == 2100
    assert worker.max_deliveries == 3
    assert worker.extra_task_modules == []
    assert worker.queues == ["support", "sentiment", "recommender", "training"]


def test_reject_hard_limit_not_above_soft() -> None:
    """`time_limit_s` must exceed `soft_time_limit_s`; the error names both and the fix."""
    with pytest.raises(ValidationError, match="DIPTYCH_WORKER__TIME_LIMIT_S") as excinfo:
        WorkerSettings(soft_time_limit_s=100, time_limit_s=100, visibility_timeout_s=200)

    assert "`time_limit_s` (100.0)" in str(excinfo.value)
    assert "`soft_time_limit_s` (100.0)" in str(excinfo.value)


def test_reject_visibility_timeout_not_above_time_limit() -> None:
    """A visibility timeout shorter than the hard limit would start running tasks twice."""
    with pytest.raises(ValidationError, match="DIPTYCH_WORKER__VISIBILITY_TIMEOUT_S"):
        WorkerSettings(visibility_timeout_s=5)


def test_reject_unknown_queue() -> None:
    """Only the four service queues can be listed in `queues`."""
    with pytest.raises(ValidationError) as excinfo:
        WorkerSettings.model_validate({"queues": ["support", "billing"]})

    assert excinfo.value.errors()[0]["loc"] == ("queues", 1)


def test_reject_repeated_queue() -> None:
    """A queue listed twice is rejected with the list shown."""
    with pytest.raises(ValidationError, match="must not repeat"):
        WorkerSettings(queues=["training", "training"])


def test_reject_file_path_as_task_module() -> None:
    """`extra_task_modules` takes dotted module names, not file paths."""
    with pytest.raises(ValidationError, match=re.escape("'tests/sample_tasks.py'")):
        WorkerSettings(extra_task_modules=["tests/sample_tasks.py"])


def test_read_worker_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """DIPTYCH_WORKER__* variables fill the nested section; lists are JSON."""
    monkeypatch.setenv("DIPTYCH_WORKER__QUEUES", '["training"]')
    monkeypatch.setenv("DIPTYCH_WORKER__EXTRA_TASK_MODULES", '["my_package.tasks"]')
    monkeypatch.setenv("DIPTYCH_WORKER__VISIBILITY_TIMEOUT_S", "5")
    monkeypatch.setenv("DIPTYCH_WORKER__SOFT_TIME_LIMIT_S", "3")
    monkeypatch.setenv("DIPTYCH_WORKER__TIME_LIMIT_S", "4")
    reset_settings()

    worker = get_settings().worker

    assert worker.queues == ["training"]
    assert worker.extra_task_modules == ["my_package.tasks"]
    assert worker.visibility_timeout_s == 5
    assert worker.time_limit_s == 4


def test_configure_late_acknowledgement() -> None:
    """Messages are acknowledged after the task and requeued when its process dies."""
    conf = create_celery_app(Settings()).conf

    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_concurrency == 1
    assert conf.broker_connection_retry_on_startup is True


def test_configure_json_utc_and_events() -> None:
    """JSON only, UTC clock, Flower-compatible task events, no result backend."""
    conf = create_celery_app(Settings()).conf

    assert conf.task_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.enable_utc is True
    assert conf.timezone == "UTC"
    assert conf.worker_send_task_events is True
    assert conf.task_send_sent_event is True
    assert conf.task_ignore_result is True
    assert conf.result_backend is None


def test_apply_time_limits_and_visibility_timeout() -> None:
    """Time limits and the visibility timeout come from the worker settings."""
    worker = WorkerSettings(visibility_timeout_s=60, soft_time_limit_s=20, time_limit_s=30)
    conf = create_celery_app(Settings(worker=worker)).conf

    assert conf.task_soft_time_limit == 20
    assert conf.task_time_limit == 30
    assert conf.broker_transport_options["visibility_timeout"] == 60
    # A sweep every tenth of the timeout returns abandoned messages soon after it.
    assert conf.broker_transport_options["unacked_restore_interval"] == 6
    assert conf.broker_transport_options["unacked_restore_throttle"] == 1


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("support.triage_ticket", "support"),
        ("sentiment.score_batch", "sentiment"),
        ("recommender.rank_users", "recommender"),
        ("training.fine_tune", "training"),
        ("worker_tests.record", "default"),
        ("supportive.other", "default"),
    ],
)
def test_route_task_by_name_prefix(task_name: str, queue: str) -> None:
    """A task goes to the queue named by its prefix before the dot, otherwise to `default`."""
    app = create_celery_app(Settings())

    route = app.amqp.router.route({}, task_name)

    assert route["queue"].name == queue


def test_declare_service_queues_and_default() -> None:
    """The configured queues are declared, and `default` is always added."""
    app = create_celery_app(Settings())
    narrow = create_celery_app(Settings(worker=WorkerSettings(queues=["training"])))

    assert [queue.name for queue in app.conf.task_queues] == [
        "support",
        "sentiment",
        "recommender",
        "training",
        "default",
    ]
    assert [queue.name for queue in narrow.conf.task_queues] == ["training", "default"]
    assert app.conf.task_default_queue == "default"


def test_include_entry_point_and_extra_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Task modules come from the `diptych.tasks` entry points, then the extra modules."""
    registered = [
        importlib.metadata.EntryPoint(
            name="support", value="services.support.tasks", group="diptych.tasks"
        )
    ]
    requested_groups: list[str] = []

    def fake_entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        requested_groups.append(group)
        return registered

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    worker = WorkerSettings(extra_task_modules=["my_package.tasks", "services.support.tasks"])

    app = create_celery_app(Settings(worker=worker))

    assert requested_groups == ["diptych.tasks"]
    assert list(app.conf.include) == ["services.support.tasks", "my_package.tasks"]


def test_use_memory_transport_without_broker() -> None:
    """Without a broker URL the app uses the in-memory transport, never a network default."""
    app = create_celery_app(Settings(broker_url=None))

    assert app.conf.broker_url == "memory://"


def test_import_app_module_without_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the module-level app and reading its tasks opens no socket."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected connection {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    app = worker_app.app

    assert app is get_celery_app()
    assert "celery.chord" in app.tasks


def test_reject_non_redis_broker_without_redis_url() -> None:
    """Delivery counters need Redis: an AMQP broker without DIPTYCH_REDIS_URL is rejected."""
    settings = Settings(broker_url="amqp://guest@127.0.0.1:5672//")

    with pytest.raises(ConfigurationError, match="DIPTYCH_REDIS_URL"):
        create_celery_app(settings)


def test_rebuild_app_after_settings_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`get_celery_app` keeps one app per settings object and follows a new broker URL."""
    first = get_celery_app()
    assert get_celery_app() is first

    monkeypatch.setenv("DIPTYCH_BROKER_URL", "redis://127.0.0.1:6379/14")
    reset_settings()
    second = get_celery_app()

    assert second is not first
    assert second.conf.broker_url == "redis://127.0.0.1:6379/14"


def test_prepare_child_process_sets_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new pool child gets the torch thread count, thread variables and no inherited pool."""
    previous_threads = torch.get_num_threads()
    target = 2 if previous_threads == 1 else 1
    monkeypatch.setenv("DIPTYCH_WORKER__TORCH_THREADS", str(target))
    reset_settings()
    disposed: list[str | None] = []
    monkeypatch.setattr(worker_app, "dispose_engine", lambda url=None: disposed.append(url))

    try:
        worker_app._prepare_child_process()

        assert torch.get_num_threads() == target
    finally:
        torch.set_num_threads(previous_threads)
    assert os.environ["OMP_NUM_THREADS"] == str(target)
    assert os.environ["MKL_NUM_THREADS"] == str(target)
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert disposed == [None]


def test_pin_worker_public_names() -> None:
    """The package exports exactly the worker API."""
    assert sorted(shared.worker.__all__) == [
        "DEFAULT_QUEUE",
        "DeadLetter",
        "DiptychTask",
        "RETRY_ON_CONNECTION_LOSS",
        "TASK_QUEUES",
        "create_celery_app",
        "get_celery_app",
        "is_distributed",
        "list_dead_letters",
        "reset_celery_app",
        "submit",
    ]
