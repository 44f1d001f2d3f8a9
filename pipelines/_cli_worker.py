"""`diptych worker` and `diptych beat`: the production layout's processes."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import get_args

import typer

from pipelines._console import fail, make_console
from shared.errors import DiptychError
from shared.settings import WorkerQueue, get_settings

__all__ = ["beat_command", "worker_command"]

console = make_console()
QUEUES = (*get_args(WorkerQueue), "default")


def parse_queues(value: str) -> list[str]:
    """Split a comma-separated queue list and check each name.

    Raises:
        ValueError: If the list is empty or names an unknown queue.
    """
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError(f"invalid --queues {value!r}: name at least one of {', '.join(QUEUES)}")
    unknown = [name for name in names if name not in QUEUES]
    if unknown:
        raise ValueError(
            f"invalid --queues {value!r}: unknown queue(s) {', '.join(unknown)}; "
            f"the queues are {', '.join(QUEUES)}"
        )
    return list(dict.fromkeys(names))


def worker_command(
    queues: str = typer.Option(
        ",".join(QUEUES), "--queues", "-Q", help="Comma-separated queues to consume."
    ),
    concurrency: int = typer.Option(
        None, min=1, help="Child processes (default: DIPTYCH_WORKER__CONCURRENCY)."
    ),
    node_name: str = typer.Option(
        None, "--node-name", "-n", help="Worker node name (default: diptych-<queues>@<host>)."
    ),
    log_level: str = typer.Option("INFO", "--loglevel", help="Celery log level."),
) -> None:
    """Run a Celery worker on the given queues (needs DIPTYCH_BROKER_URL)."""
    from shared.worker import get_celery_app

    try:
        names = parse_queues(queues)
    except ValueError as exc:
        raise fail(exc) from None
    settings = get_settings()
    if not settings.broker_url:
        raise fail(
            "no broker configured: set DIPTYCH_BROKER_URL (e.g. redis://127.0.0.1:6379/0); "
            "without one, tasks run in-process and no worker is needed"
        )
    try:
        app = get_celery_app()
    except DiptychError as exc:
        raise fail(exc) from None
    node = node_name or f"diptych-{'-'.join(names)}@{socket.gethostname()}"
    argv = ["worker", "--queues", ",".join(names), "--hostname", node, "--loglevel", log_level]
    argv += ["--concurrency", str(concurrency or settings.worker.concurrency)]
    # Celery expands %h (host name) in the node name; the banner shows what Celery will use.
    expanded_node = node.replace("%h", socket.gethostname())
    console.print(f"Worker {expanded_node} consuming {', '.join(names)}", markup=False)
    app.worker_main(argv)


def beat_command(
    schedule_file: Path = typer.Option(
        None, help="Where beat keeps its last-run times (default: <home>/celerybeat-schedule)."
    ),
    log_level: str = typer.Option("INFO", "--loglevel", help="Celery log level."),
    show: bool = typer.Option(False, "--show", help="Print the schedule and exit."),
) -> None:
    """Run the scheduler that sends the periodic tasks (UTC), or show its schedule."""
    from rich.table import Table

    from shared.worker import get_celery_app
    from shared.worker.schedule import build_beat_schedule, find_scheduled_tasks

    settings = get_settings()
    try:
        tasks = find_scheduled_tasks()
        schedule = build_beat_schedule(settings, tasks)
    except DiptychError as exc:
        raise fail(exc) from None
    if show:
        table = Table("entry", "task", "cron (UTC)", "description")
        for task in tasks:
            cron = settings.worker.schedule.get(task.name, task.cron)
            table.add_row(task.name, task.task, cron, task.description)
        console.print(table)
        return
    if not settings.broker_url:
        raise fail("no broker configured: set DIPTYCH_BROKER_URL so beat can send tasks")
    app = get_celery_app()
    app.conf.beat_schedule = schedule
    path = schedule_file or settings.home / "celerybeat-schedule"
    path.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"Beat sending {len(schedule)} periodic task(s); state in {path}", markup=False)
    app.Beat(schedule=str(path), loglevel=log_level).run()
