"""A MovieLens batch run through real Celery workers on the real Redis and PostgreSQL."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.recommender import store
from services.recommender.batch import run_batch
from services.recommender.models import RecommendationRow
from services.recommender.serving import fit_from_database
from shared.settings import get_settings
from shared.storage import session_scope
from tests._celery import WorkerProcess, build_worker_env, wait_until

TOP_N = 10
USERS = 610
TIMEOUT_S = 300.0
# A killed worker's messages come back after one visibility timeout; the time
# limits stay below it and above the first chunk's model loading.
WORKER_LIMITS = {"visibility_timeout_s": 40, "soft_time_limit_s": 25, "time_limit_s": 30}


def _written(run_id: str) -> int:
    return store.count_finished_users(run_id)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_batch_survives_killed_worker(
    reco_env: Path,
    data_dir: Path,
    database_url: str,
    celery_broker_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """610 users, a worker killed with SIGKILL mid-run, a second one: N unique unseen items each."""
    from pipelines.datasets import read_movielens

    # Given MovieLens in PostgreSQL, a fitted model and a worker on the recommender queue
    items, ratings = read_movielens(data_dir)
    store.import_items(items)
    store.import_interactions(ratings)
    fit_from_database()
    env = build_worker_env(
        broker_url=celery_broker_url,
        home=get_settings().home,
        database_url=database_url,
        worker=WORKER_LIMITS,
    )
    first = start_worker(env=env, queues=["recommender"], name="reco-a")

    # When the run's chunks are queued and the worker dies part-way
    started = run_batch(top_n=TOP_N, run_id="nightly", chunk_size=5, timeout_s=0)
    assert not started.is_finished
    wait_until(lambda: _written("nightly") >= 40, timeout_s=TIMEOUT_S, message=first.log)
    first.kill(signal.SIGKILL)
    assert _written("nightly") < USERS, "the worker finished before it could be killed"
    start_worker(env=env, queues=["recommender"], name="reco-b")
    wait_until(
        lambda: _written("nightly") == USERS, timeout_s=TIMEOUT_S, message="not all users written"
    )
    resumed = run_batch(top_n=TOP_N, run_id="nightly", chunk_size=5, timeout_s=60)

    # Then every user has exactly N ranked, distinct, unseen items
    assert resumed.is_finished
    assert resumed.written_before == USERS
    with session_scope() as session:
        rows = session.execute(
            select(
                RecommendationRow.user_id, RecommendationRow.rank, RecommendationRow.item_id
            ).where(RecommendationRow.run_id == "nightly")
        ).all()
        users = session.scalar(select(func.count(func.distinct(RecommendationRow.user_id))))
    assert users == USERS
    by_user: dict[int, list[tuple[int, int]]] = {}
    for user_id, rank, item_id in rows:
        by_user.setdefault(user_id, []).append((rank, item_id))
    log = store.load_interaction_log(like_threshold=4.0, dislike_threshold=2.0)
    seen: dict[int, set[int]] = {}
    for user_id, item_id in zip(log.users.tolist(), log.items.tolist(), strict=True):
        seen.setdefault(user_id, set()).add(item_id)
    for user_id, entries in by_user.items():
        assert sorted(rank for rank, _ in entries) == list(range(1, TOP_N + 1)), user_id
        assert len({item for _, item in entries}) == TOP_N, user_id
        assert not {item for _, item in entries} & seen[user_id], user_id
