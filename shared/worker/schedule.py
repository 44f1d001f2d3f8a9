"""The beat schedule: periodic tasks that services declare, in UTC.

A service lists its periodic tasks as `ScheduledTask` entries under the
``diptych.schedules`` entry-point group (value ``module:ATTRIBUTE``, a list).
`build_beat_schedule` turns them into Celery's ``beat_schedule``, applying
the operator's overrides from ``DIPTYCH_WORKER__SCHEDULE`` (a new cron
expression, or ``off``). ``diptych beat`` runs the scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from celery.schedules import crontab

from shared.errors import ConfigurationError
from shared.settings import Settings

__all__ = ["ScheduledTask", "build_beat_schedule", "find_scheduled_tasks", "parse_cron"]

SCHEDULES_GROUP = "diptych.schedules"


@dataclass(frozen=True)
class ScheduledTask:
    """A task that beat sends on a cron schedule (UTC)."""

    name: str
    task: str
    cron: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


def parse_cron(expression: str) -> crontab:
    """Parse a five-field cron expression (minute hour day month weekday) in UTC.

    Raises:
        ConfigurationError: If the expression does not have five valid fields.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ConfigurationError(
            f"invalid cron expression {expression!r}: use five fields (minute hour day "
            'month weekday), e.g. "0 2 * * *"'
        )
    minute, hour, day, month, weekday = fields
    try:
        return crontab(
            minute=minute, hour=hour, day_of_month=day, month_of_year=month, day_of_week=weekday
        )
    except ValueError as exc:
        raise ConfigurationError(f"invalid cron expression {expression!r}: {exc}") from None


def find_scheduled_tasks() -> list[ScheduledTask]:
    """Return the entries that installed packages declare, sorted by name.

    Raises:
        ConfigurationError: If two entries share a name or an entry is not a `ScheduledTask`.
    """
    found: dict[str, ScheduledTask] = {}
    for entry in sorted(entry_points(group=SCHEDULES_GROUP), key=lambda e: e.name):
        for item in entry.load():
            if not isinstance(item, ScheduledTask):
                raise ConfigurationError(
                    f"invalid schedule entry in {entry.value}: expected ScheduledTask, "
                    f"got {type(item).__name__}"
                )
            if item.name in found:
                raise ConfigurationError(
                    f"schedule entry {item.name!r} is declared twice ({entry.value}); "
                    "rename one of them"
                )
            found[item.name] = item
    return [found[name] for name in sorted(found)]


def build_beat_schedule(
    settings: Settings, tasks: list[ScheduledTask] | None = None
) -> dict[str, dict[str, Any]]:
    """Build Celery's ``beat_schedule`` from the declared entries and the overrides.

    Args:
        settings: Supplies ``worker.schedule`` overrides by entry name.
        tasks: The entries; ``None`` finds them through the entry points.

    Raises:
        ConfigurationError: If an override names no declared entry.
    """
    tasks = find_scheduled_tasks() if tasks is None else tasks
    overrides = settings.worker.schedule
    unknown = sorted(set(overrides) - {task.name for task in tasks})
    if unknown:
        raise ConfigurationError(
            f"DIPTYCH_WORKER__SCHEDULE names unknown entries {unknown}; the entries are "
            f"{sorted(task.name for task in tasks)}"
        )
    schedule = {}
    for task in tasks:
        expression = overrides.get(task.name, task.cron)
        if expression == "off":
            continue
        schedule[task.name] = {
            "task": task.task,
            "schedule": parse_cron(expression),
            "kwargs": dict(task.kwargs),
        }
    return schedule
