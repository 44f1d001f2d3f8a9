"""The Celery worker layer: one app, a queue per service, bounded redelivery.

Services define thin tasks over their idempotent step functions and list their
task modules in the `diptych.tasks` entry-point group::

    from shared.worker import DiptychTask
    from shared.worker.app import app

    @app.task(base=DiptychTask, name="support.triage_ticket")
    def triage_ticket(ticket_id: int) -> None: ...

Callers use `submit`, which sends the task to the queue named by the task-name
prefix when a broker is configured and runs it in-process otherwise.
"""

from shared.worker._config import DEFAULT_QUEUE, TASK_QUEUES
from shared.worker.app import create_celery_app, get_celery_app, reset_celery_app
from shared.worker.dispatch import is_distributed, submit
from shared.worker.redelivery import (
    RETRY_ON_CONNECTION_LOSS,
    DeadLetter,
    DiptychTask,
    list_dead_letters,
)

__all__ = [
    "DEFAULT_QUEUE",
    "RETRY_ON_CONNECTION_LOSS",
    "TASK_QUEUES",
    "DeadLetter",
    "DiptychTask",
    "create_celery_app",
    "get_celery_app",
    "is_distributed",
    "list_dead_letters",
    "reset_celery_app",
    "submit",
]
