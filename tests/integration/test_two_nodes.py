"""Two worker nodes serve all three services; one node is killed with SIGKILL mid-run.

Each node is what an operator runs on one machine: a ``diptych worker`` on the
support, sentiment and recommender queues and a ``diptych sentiment consume``
process on the item stream. Both nodes share the real Redis and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from services.recommender import store as reco_store
from services.recommender.batch import fan_out_batch
from services.recommender.models import Interaction, RecommendationRow, RecommendationRun
from services.sentiment.models import Bucket, Mention, RuleState, SentimentItem
from services.sentiment.replay import iter_stocknet_items
from services.sentiment.stream import connect_redis, publish_items
from services.sentiment.tasks import monitor_alerts
from services.support.dispatch import enqueue_tickets
from services.support.models import Draft, Passage, Ticket
from services.support.pipeline import store_ticket
from services.support.schemas import TicketCreate
from shared.settings import get_settings
from shared.storage import session_scope
from shared.worker import TASK_QUEUES, list_dead_letters, submit
from tests._celery import WorkerProcess, build_worker_env, wait_until
from tests.integration.conftest import FleetData

SERVICE_QUEUES = ("support", "sentiment", "recommender")
TICKETS = 60
TOP_N = 5
RUN_ID = "fleet"
STREAM_ITEMS = 480
EARLY_ITEMS = 32
# Generous, for busy machines; nothing here measures speed.
READY_TIMEOUT_S = 300.0
TIMEOUT_S = 420.0
# A message held by a killed node comes back one visibility timeout after its
# delivery. The time limits stay below it, so that a task's message does not come
# back while a live node runs it, and above the first task's model loading.
WORKER_LIMITS = {"visibility_timeout_s": 60, "soft_time_limit_s": 45, "time_limit_s": 50}
# A live consumer scores a batch of 16 tweets in far less than 30 s, so only a
# killed consumer's entries stay idle long enough to be claimed by the other.
STREAM_SETTINGS = {
    "DIPTYCH_SENTIMENT__BATCH_SIZE": "16",
    "DIPTYCH_SENTIMENT__CLAIM_IDLE_MS": "30000",
}

_TASK_EVENT = re.compile(r"Task (?P<task>[\w.]+)\[(?P<id>[0-9a-f-]{36})\] (?P<event>\w+)")
_CONSUMER_SUMMARY = re.compile(r"Batches: (\d+), stored: (\d+), dead-lettered: (\d+)\.")


@dataclass
class TaskEvents:
    """Task ids by outcome, read from one worker node's log."""

    received: dict[str, str] = field(default_factory=dict)
    succeeded: dict[str, str] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, worker: WorkerProcess) -> TaskEvents:
        """Parse Celery's "Task name[id] received / succeeded / raised ..." lines."""
        events = cls()
        for match in _TASK_EVENT.finditer(worker.log):
            task, task_id, event = match.group("task", "id", "event")
            if event == "received":
                events.received[task_id] = task
            else:
                events.ended.add(task_id)
                if event == "succeeded":
                    events.succeeded[task_id] = task
        return events

    @property
    def in_flight(self) -> dict[str, str]:
        """Tasks received and not yet ended, whose messages the node has not acknowledged."""
        return {i: task for i, task in self.received.items() if i not in self.ended}


class StreamProgress:
    """Tracks which consumer finished which stream entries, from the group's pending lists.

    An entry that was pending for a consumer at one poll and for no consumer at
    the next was acknowledged by it, which a consumer does after it stored the
    item. An entry claimed by another consumer and acknowledged between two
    polls would be credited to the first. Claims wait `claim_idle_ms` (30 s
    here), so only a dead consumer's entries are claimed.
    """

    def __init__(self, client: redis.Redis, names: list[str]) -> None:
        self.client = client
        self.names = names
        self.held: dict[str, set[str]] = {name: set() for name in names}
        self.finished: dict[str, set[str]] = {name: set() for name in names}

    def poll(self) -> None:
        """Read every consumer's pending entries once."""
        settings = get_settings().sentiment
        pending: dict[str, set[str]] = {}
        for name in self.names:
            rows = self.client.xpending_range(
                settings.stream, settings.group, min="-", max="+", count=10_000, consumername=name
            )
            pending[name] = {str(row["message_id"]) for row in rows}
        still_pending = set().union(*pending.values())
        for name in self.names:
            self.finished[name] |= self.held[name] - still_pending
            self.held[name] = pending[name]


def _drafted() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count(func.distinct(Draft.ticket_id)))) or 0)


def _stored_items() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(SentimentItem)) or 0)


def _written() -> int:
    return reco_store.count_finished_users(RUN_ID)


def _is_stopped_mid_task(worker: WorkerProcess) -> bool:
    """Stop the worker's processes with SIGSTOP if it is running a task; return whether it is.

    Between a look at the log and a kill, the task could end. A stopped process
    group cannot end it, so the log read after the stop stays true until the kill.
    """
    if not TaskEvents.read(worker).in_flight:
        return False
    os.killpg(worker.pid, signal.SIGSTOP)
    if TaskEvents.read(worker).in_flight:
        return True
    os.killpg(worker.pid, signal.SIGCONT)
    return False


def _logs(*processes: WorkerProcess) -> Callable[[], str]:
    return lambda: "\n".join(f"--- {p.name}\n{p.log[-4000:]}" for p in processes)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_fleet_survives_a_killed_node(
    fleet_env: FleetData,
    celery_broker_url: str,
    start_worker: Callable[..., WorkerProcess],
    start_consumer: Callable[..., WorkerProcess],
    data_dir: Path,
) -> None:
    """Tickets, a stream slice and a batch run on two nodes, one killed: every result once."""
    # Given two nodes, each a worker on the three service queues and a stream consumer
    assert set(SERVICE_QUEUES) <= set(TASK_QUEUES)
    settings = get_settings()
    env = build_worker_env(
        broker_url=celery_broker_url,
        home=settings.home,
        database_url=settings.resolved_database_url,
        worker=WORKER_LIMITS,
    )
    env.update(STREAM_SETTINGS)
    nodes = ("node-a", "node-b")
    # The four processes start at once: each spends most of its start-up importing
    # torch and loading models, and on a busy machine one after the other takes minutes.
    with ThreadPoolExecutor(max_workers=2 * len(nodes)) as pool:
        worker_starts = {
            name: pool.submit(
                start_worker,
                env=env,
                queues=SERVICE_QUEUES,
                name=name,
                launcher="diptych",
                ready_timeout_s=READY_TIMEOUT_S,
            )
            for name in nodes
        }
        consumer_starts = {
            name: pool.submit(
                start_consumer, name=name, env=STREAM_SETTINGS, ready_timeout_s=READY_TIMEOUT_S
            )
            for name in nodes
        }
        workers = {name: start.result() for name, start in worker_starts.items()}
        consumers = {name: start.result() for name, start in consumer_starts.items()}
    doomed, survivor = nodes
    logs = _logs(*workers.values(), *consumers.values())
    client = connect_redis()
    stream = settings.sentiment

    # When tickets are queued, and the batch run and most stream items follow once
    # the first drafts exist. The support queue is first in, first out, so drafts
    # start only after every ticket was triaged and retrieved. The later work then
    # runs beside the drafts, and all three services are part-way at the kill. The
    # first few stream items come with the tickets, so that each consumer's first
    # (slowest) batch is likely behind it by then.
    items = list(iter_stocknet_items(data_dir, limit=STREAM_ITEMS))
    progress = StreamProgress(client, list(consumers))
    ticket_ids = [
        store_ticket(TicketCreate(text=text)).ticket_id for text in fleet_env.ticket_texts[:TICKETS]
    ]
    enqueue_tickets(ticket_ids)
    publish_items(client, items[:EARLY_ITEMS], stream=stream.stream)

    def is_drafting() -> bool:
        progress.poll()
        return _drafted() >= 1

    wait_until(is_drafting, timeout_s=TIMEOUT_S, message=logs, interval_s=0.2)
    queued_users = fan_out_batch(RUN_ID, top_n=TOP_N, chunk_size=1)
    publish_items(client, items[EARLY_ITEMS:], stream=stream.stream)

    def is_mid_run() -> bool:
        progress.poll()
        return (
            _written() >= 2
            and _drafted() >= 3
            and all(progress.finished[name] for name in consumers)
            and _is_stopped_mid_task(workers[doomed])
        )

    wait_until(is_mid_run, timeout_s=TIMEOUT_S, message=logs, interval_s=0.2)
    workers[doomed].kill(signal.SIGKILL)
    consumers[doomed].kill(signal.SIGKILL)
    progress.poll()
    before_kill = {name: TaskEvents.read(worker) for name, worker in workers.items()}
    held_by_doomed = progress.held[doomed]
    drafted_at_kill, written_at_kill, stored_at_kill = _drafted(), _written(), _stored_items()

    # Then the surviving node finishes every service's work
    wait_until(lambda: _drafted() == TICKETS, timeout_s=TIMEOUT_S, message=logs)
    wait_until(lambda: _written() == fleet_env.users, timeout_s=TIMEOUT_S, message=logs)
    wait_until(
        lambda: (
            _stored_items() == STREAM_ITEMS
            and client.xpending(stream.stream, stream.group)["pending"] == 0
        ),
        timeout_s=TIMEOUT_S,
        message=logs,
    )
    # The only sentiment task, the monitor pass, runs on the surviving node too.
    submit(monitor_alerts)
    wait_until(
        lambda: "sentiment.monitor" in TaskEvents.read(workers[survivor]).succeeded.values(),
        timeout_s=TIMEOUT_S,
        message=logs,
    )
    # A message the killed node held comes back only after the visibility
    # timeout, which can be later than the moment every result above is stored.
    in_flight = before_kill[doomed].in_flight
    assert in_flight, f"{doomed} held no task message when it was killed"
    wait_until(
        lambda: set(in_flight) <= set(TaskEvents.read(workers[survivor]).succeeded),
        timeout_s=TIMEOUT_S,
        message=logs,
    )
    consumers[survivor].process.send_signal(signal.SIGINT)
    consumers[survivor].process.wait(timeout=60)
    after = TaskEvents.read(workers[survivor])

    # The kill came part-way through all three services, after both nodes had worked
    assert queued_users == fleet_env.users
    assert 1 <= drafted_at_kill < TICKETS, "support finished before the kill"
    assert 2 <= written_at_kill < fleet_env.users, "the batch run finished before the kill"
    assert 0 < stored_at_kill < STREAM_ITEMS, "the stream was consumed before the kill"
    assert before_kill[doomed].succeeded, f"{doomed} ran no task before the kill"
    assert before_kill[survivor].succeeded, f"{survivor} ran no task before the kill"
    assert progress.finished[doomed], f"consumer {doomed} stored nothing before the kill"
    assert progress.finished[survivor], f"consumer {survivor} stored nothing before the kill"

    # What the killed node held was delivered again and finished by the survivor
    assert set(in_flight) <= set(after.succeeded), logs()
    if held_by_doomed:
        assert f"consumer claimed name={survivor}" in consumers[survivor].log

    # Every ticket is classified, has one set of passages and exactly one draft, and ends drafted
    with session_scope() as session:
        statuses = dict(session.execute(select(Ticket.id, Ticket.status)).all())
        unclassified = session.scalar(
            select(func.count(Ticket.id)).where(Ticket.intent_model.is_(None))
        )
        drafts = session.execute(
            select(Draft.ticket_id, func.count(Draft.id), func.max(Draft.revision)).group_by(
                Draft.ticket_id
            )
        ).all()
        ranks: dict[int, list[int]] = {}
        for ticket_id, rank in session.execute(
            select(Passage.ticket_id, Passage.rank).order_by(Passage.ticket_id, Passage.rank)
        ):
            ranks.setdefault(ticket_id, []).append(rank)
    assert sorted(statuses) == sorted(ticket_ids)
    assert set(statuses.values()) == {"drafted"}
    assert unclassified == 0
    assert sorted(ticket_id for ticket_id, _, _ in drafts) == sorted(ticket_ids)
    assert {count for _, count, _ in drafts} == {1}
    assert {revision for _, _, revision in drafts} == {1}
    assert sorted(ranks) == sorted(ticket_ids)
    passage_counts = {len(ticket_ranks) for ticket_ranks in ranks.values()}
    assert len(passage_counts) == 1, passage_counts
    assert passage_counts != {0}
    assert all(ticket_ranks == sorted(set(ticket_ranks)) for ticket_ranks in ranks.values())

    # Every stream item is stored once, with its mentions counted once in buckets
    with session_scope() as session:
        external_ids = list(session.scalars(select(SentimentItem.external_id)))
        pairs = session.scalar(
            select(func.count()).select_from(
                select(Mention.item_id, Mention.entity).distinct().subquery()
            )
        )
        volume = session.scalar(
            select(func.sum(Bucket.n_positive + Bucket.n_neutral + Bucket.n_negative)).where(
                Bucket.granularity == "5m"
            )
        )
        evaluated = set(session.scalars(select(RuleState.evaluated_until)))
    assert sorted(external_ids) == sorted(item["id"] for item in items)
    assert volume == pairs
    assert client.xlen(stream.dead_letter_stream) == 0
    newest = dt.datetime.fromisoformat(items[-1]["published_at"].replace("Z", "+00:00"))
    assert evaluated == {newest.astimezone(dt.UTC)}

    # The surviving consumer stored part of the stream, so the killed one stored the rest
    summary = _CONSUMER_SUMMARY.search(consumers[survivor].log)
    assert summary is not None, consumers[survivor].log[-3000:]
    survivor_stored, survivor_dead = int(summary.group(2)), int(summary.group(3))
    assert 0 < survivor_stored < STREAM_ITEMS
    assert survivor_dead == 0

    # Every user has N ranked, distinct, unseen items under the run id, and the run is finished
    with session_scope() as session:
        rows = session.execute(
            select(
                RecommendationRow.user_id, RecommendationRow.rank, RecommendationRow.item_id
            ).where(RecommendationRow.run_id == RUN_ID)
        ).all()
        run = session.scalar(select(RecommendationRun).where(RecommendationRun.run_id == RUN_ID))
        assert run is not None
        run_status, run_users = run.status, run.user_count
        seen: dict[int, set[int]] = {}
        for user_id, item_id in session.execute(select(Interaction.user_id, Interaction.item_id)):
            seen.setdefault(user_id, set()).add(item_id)
    by_user: dict[int, list[tuple[int, int]]] = {}
    for user_id, rank, item_id in rows:
        by_user.setdefault(user_id, []).append((rank, item_id))
    assert sorted(by_user) == sorted(reco_store.list_user_ids())
    for user_id, entries in by_user.items():
        assert sorted(rank for rank, _ in entries) == list(range(1, TOP_N + 1)), user_id
        assert len({item for _, item in entries}) == TOP_N, user_id
        assert not {item for _, item in entries} & seen[user_id], user_id
    assert run_status == "finished"
    assert run_users == fleet_env.users

    # No message of any service queue was given up on
    for queue in SERVICE_QUEUES:
        assert list_dead_letters(queue) == [], queue
