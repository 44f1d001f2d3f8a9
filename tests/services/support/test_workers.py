"""Tickets through real Celery workers on the real Redis and PostgreSQL."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from services.support.dispatch import enqueue_tickets
from services.support.models import Draft, Passage
from services.support.pipeline import store_ticket
from services.support.schemas import TicketCreate
from shared.settings import get_settings
from shared.storage import session_scope
from tests._celery import WorkerProcess, build_worker_env, wait_until
from tests.services.support.conftest import SupportModels

TICKETS = 50
TIMEOUT_S = 240.0
# Restoring the messages a killed worker held takes one visibility timeout;
# the time limits must stay below it, and above the first task's model loading.
WORKER_LIMITS = {"visibility_timeout_s": 40, "soft_time_limit_s": 25, "time_limit_s": 30}


def _drafted() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count(func.distinct(Draft.ticket_id)))) or 0)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_tickets_survive_a_killed_worker_and_are_drafted_once(
    support_env: SupportModels,
    knowledge_base: int,
    celery_broker_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """50 tickets, a worker killed with SIGKILL mid-run, a new one started: each drafted once."""
    # Given a worker on the support queue and 50 stored tickets
    env = build_worker_env(
        broker_url=celery_broker_url,
        home=get_settings().home,
        database_url=get_settings().resolved_database_url,
        worker=WORKER_LIMITS,
    )
    first = start_worker(env=env, queues=["support"], name="support-a")
    texts = [example.text for example in support_env.splits.train[:TICKETS]]
    ids = [store_ticket(TicketCreate(text=text)).ticket_id for text in texts]

    # When the tickets are queued and the worker dies part-way
    enqueue_tickets(ids)
    wait_until(lambda: _drafted() >= 5, timeout_s=TIMEOUT_S, message=first.log)
    first.kill(signal.SIGKILL)
    assert _drafted() < TICKETS, "the worker finished before it could be killed"
    start_worker(env=env, queues=["support"], name="support-b")

    # Then every ticket ends with exactly one draft and one set of passages
    wait_until(lambda: _drafted() == TICKETS, timeout_s=TIMEOUT_S, message="not all drafted")
    with session_scope() as session:
        drafts = session.execute(
            select(Draft.ticket_id, func.count(Draft.id)).group_by(Draft.ticket_id)
        ).all()
        passages = session.execute(
            select(Passage.ticket_id, func.count(Passage.id)).group_by(Passage.ticket_id)
        ).all()
    assert sorted(ticket_id for ticket_id, _ in drafts) == sorted(ids)
    assert {count for _, count in drafts} == {1}
    assert {count for _, count in passages} == {5}
