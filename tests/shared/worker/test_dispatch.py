"""`submit` runs tasks in-process without a broker and publishes to the routed queue with one."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import redis

from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.worker import (
    DiptychTask,
    create_celery_app,
    get_celery_app,
    is_distributed,
    list_dead_letters,
    submit,
)
from tests.shared.worker import sample_tasks


def test_submit_runs_in_process_without_broker(tmp_path: Path) -> None:
    """Without a broker the task runs before `submit` returns, under the returned id."""
    output = tmp_path / "request.txt"

    task_id = submit(sample_tasks.write_request, str(output), (1, 2))

    assert not is_distributed()
    # The tuple arrives as a list, as it would after the JSON trip to a worker.
    assert output.read_text() == f"{task_id} list"


def test_submit_logs_in_process_failure(caplog: pytest.LogCaptureFixture) -> None:
    """A failing in-process task is logged with its id, like a worker does, not raised."""
    with caplog.at_level(logging.ERROR, logger="shared.worker.dispatch"):
        task_id = submit(sample_tasks.fail, "broken on purpose")

    [record] = caplog.records
    assert task_id in record.getMessage()
    assert "worker_tests.fail" in record.getMessage()
    assert record.exc_info is not None
    assert "broken on purpose" in str(record.exc_info[1])


def test_submit_rejects_unserializable_argument() -> None:
    """Arguments a worker could not receive as JSON fail in-process too, naming the task."""
    with pytest.raises(TypeError, match=re.escape("'worker_tests.write_request'")):
        submit(sample_tasks.write_request, "/nowhere", object())


def test_list_dead_letters_empty_without_broker() -> None:
    """The embedded layout never redelivers, so it has no dead letters."""
    assert list_dead_letters("default") == []


def test_list_dead_letters_rejects_unknown_queue() -> None:
    """Only the Diptych queues have dead-letter lists; the error lists them."""
    with pytest.raises(ValueError, match="support, sentiment, recommender, training, default"):
        list_dead_letters("billing")


def test_submit_publishes_to_routed_queue(celery_broker_url: str) -> None:
    """With a broker, `submit` publishes a JSON message to the queue named by the prefix."""
    app = get_celery_app()

    @app.task(base=DiptychTask, name="training.sample_fit", shared=False)
    def sample_fit(run_name: str) -> None:
        raise AssertionError("this test has no worker, so the task never runs")

    task_id = submit(sample_fit, "run-1")

    assert is_distributed()
    with redis.Redis.from_url(celery_broker_url) as client:
        assert client.llen("default") == 0
        [raw_message] = client.lrange("training", 0, -1)
    message = json.loads(raw_message)
    assert message["headers"]["id"] == task_id
    assert message["headers"]["task"] == "training.sample_fit"
    assert message["content-type"] == "application/json"


def test_submit_resolves_task_on_current_app(celery_broker_url: str) -> None:
    """A task bound to an app built before the broker was set still reaches Redis."""
    old_app = create_celery_app(Settings(broker_url=None))

    @old_app.task(base=DiptychTask, name="worker_tests.bound_to_old_app")
    def bound_to_old_app() -> None:
        raise AssertionError("this test has no worker, so the task never runs")

    submit(bound_to_old_app)

    with redis.Redis.from_url(celery_broker_url) as client:
        assert client.llen("default") == 1


def test_submit_rejects_unregistered_task(celery_broker_url: str) -> None:
    """A task the current app does not know cannot be published; the error names it."""
    other_app = create_celery_app(Settings(broker_url=None))

    @other_app.task(base=DiptychTask, name="worker_tests.private", shared=False)
    def private() -> None:
        raise AssertionError("never runs")

    with pytest.raises(ConfigurationError, match=re.escape("'worker_tests.private'")):
        submit(private)
