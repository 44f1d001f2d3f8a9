"""The beat schedule: declared entries, overrides in UTC cron, bad expressions."""

from __future__ import annotations

import pytest
from celery.schedules import crontab
from pydantic import ValidationError

from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.worker.schedule import (
    ScheduledTask,
    build_beat_schedule,
    find_scheduled_tasks,
    parse_cron,
)

TASKS = [
    ScheduledTask(name="nightly", task="recommender.batch", cron="0 2 * * *"),
    ScheduledTask(name="alerts", task="sentiment.evaluate", cron="*/5 * * * *", kwargs={"x": 1}),
]


def test_entries_become_crontabs() -> None:
    schedule = build_beat_schedule(Settings(), TASKS)

    assert schedule["nightly"]["task"] == "recommender.batch"
    assert schedule["nightly"]["schedule"] == crontab(minute="0", hour="2")
    assert schedule["alerts"]["kwargs"] == {"x": 1}


def test_override_replaces_and_off_removes() -> None:
    settings = Settings(worker={"schedule": {"nightly": "30 1 * * 1", "alerts": "off"}})

    schedule = build_beat_schedule(settings, TASKS)

    assert set(schedule) == {"nightly"}
    assert schedule["nightly"]["schedule"] == crontab(minute="30", hour="1", day_of_week="1")


def test_override_of_unknown_entry_is_rejected() -> None:
    settings = Settings(worker={"schedule": {"nightley": "0 2 * * *"}})

    with pytest.raises(ConfigurationError, match="nightley"):
        build_beat_schedule(settings, TASKS)


@pytest.mark.parametrize("expression", ["0 2 * *", "", "every day"])
def test_setting_rejects_wrong_field_count(expression: str) -> None:
    with pytest.raises(ValidationError, match="cron expression"):
        Settings(worker={"schedule": {"nightly": expression}})


@pytest.mark.parametrize("expression", ["61 2 * * *", "0 25 * * *", "a b c d e"])
def test_parse_cron_rejects_bad_fields(expression: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid cron expression"):
        parse_cron(expression)


def test_installed_entries_include_the_retraining_check() -> None:
    names = {task.name for task in find_scheduled_tasks()}

    assert "training-check-candidates" in names
