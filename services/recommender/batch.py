"""Batch runs: every user's top-N written under a run id, in chunks of users.

Each chunk is one task (`services.recommender.tasks.recommend_chunk`): on
Celery workers when a broker is configured, in this process otherwise. A chunk
skips users already written in the run and the table's unique constraints
reject a second write, so a redelivered chunk (after a killed worker) and a
resumed run both leave each user with exactly one list.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from services.recommender import store
from services.recommender.serving import get_serving_model, model_folder, recommend_for_users
from shared.worker import is_distributed, submit

__all__ = ["BatchSummary", "compute_chunk", "run_batch", "split_chunks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSummary:
    """The outcome of `run_batch`."""

    run_id: str
    users: int
    written_before: int
    seconds: float
    is_finished: bool


def split_chunks(user_ids: list[int], size: int) -> list[list[int]]:
    """Split `user_ids` into consecutive chunks of at most `size`."""
    return [user_ids[start : start + size] for start in range(0, len(user_ids), size)]


def compute_chunk(run_id: str, user_ids: list[int], top_n: int) -> int:
    """Recommend for the users of a chunk not yet written in `run_id` and store their lists.

    Returns:
        The number of users written by this call.
    """
    pending = sorted(set(user_ids) - store.finished_user_ids_for(run_id, list(user_ids)))
    if not pending:
        return 0
    model = get_serving_model()
    lists = recommend_for_users(pending, top_n=top_n)
    item_ids = model.catalogue.item_ids
    rows_by_user: dict[int, list[dict[str, object]]] = {}
    for user_id, recommendations in zip(pending, lists, strict=True):
        if not recommendations:
            logger.warning("no candidates run_id=%s user_id=%d", run_id, user_id)
            continue
        rows_by_user[user_id] = [
            {
                "rank": rank,
                "item_id": int(item_ids[rec.row]),
                "score": rec.score,
                "reason": rec.reason,
                "reason_item_id": None if rec.reason_row is None else int(item_ids[rec.reason_row]),
                "reason_tag": rec.reason_tag,
            }
            for rank, rec in enumerate(recommendations, start=1)
        ]
    return store.write_user_recommendations(run_id, rows_by_user)


def run_batch(
    *,
    top_n: int,
    run_id: str | None = None,
    chunk_size: int,
    progress: Callable[[int, int], None] | None = None,
    poll_interval_s: float = 1.0,
    timeout_s: float | None = None,
) -> BatchSummary:
    """Write every user's top-N under `run_id` (a new id when None), resuming a started run.

    With a broker, chunks go to the `recommender` queue and this call waits until
    every user is written or `timeout_s` passes. Without one, chunks run here.

    Args:
        top_n: Items per user.
        run_id: The run to start or resume.
        chunk_size: Users per task.
        progress: Called with (users written, users in total) as the run advances.
        poll_interval_s: Seconds between progress checks while workers run.
        timeout_s: Seconds to wait for workers; ``None`` waits until done.

    Raises:
        ModelNotFittedError: If nothing was fitted yet.
        ValueError: If the run exists with another `top_n`.
    """
    started = time.perf_counter()
    if not (model_folder() / "model.json").is_file():
        get_serving_model()
    run_id = run_id or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    users, done, pending = _open_run(run_id, top_n)
    from services.recommender.tasks import recommend_chunk

    if progress is not None:
        progress(len(done), len(users))
    if is_distributed():
        for chunk in split_chunks(pending, chunk_size):
            submit(recommend_chunk, run_id, chunk, top_n)
        written = _wait_for_workers(
            run_id, len(users), progress=progress, interval_s=poll_interval_s, timeout_s=timeout_s
        )
    else:
        written = len(done)
        for chunk in split_chunks(pending, chunk_size):
            submit(recommend_chunk, run_id, chunk, top_n)
            written = store.count_finished_users(run_id)
            if progress is not None:
                progress(written, len(users))
    is_finished = written >= len(users)
    seconds = time.perf_counter() - started
    if is_finished:
        store.finish_run(run_id, user_count=written, details={"seconds": seconds})
    logger.info("batch run ended run_id=%s written=%d finished=%s", run_id, written, is_finished)
    return BatchSummary(
        run_id=run_id,
        users=len(users),
        written_before=len(done),
        seconds=seconds,
        is_finished=is_finished,
    )


def _open_run(run_id: str, top_n: int) -> tuple[list[int], set[int], list[int]]:
    store.create_run(run_id, top_n=top_n)
    users = store.list_user_ids()
    done = set(store.finished_user_ids(run_id))
    pending = [u for u in users if u not in done]
    logger.info(
        "batch run started run_id=%s users=%d already_written=%d", run_id, len(users), len(done)
    )
    return users, done, pending


def fan_out_batch(run_id: str, *, top_n: int, chunk_size: int) -> int:
    """Create or resume `run_id` and queue a task per chunk of unwritten users, without waiting.

    The chunk task that writes the last user marks the run finished. Calling this
    again for the same run queues only the users still missing.

    Returns:
        How many users were queued.
    """
    _users, _done, pending = _open_run(run_id, top_n)
    from services.recommender.tasks import recommend_chunk

    for chunk in split_chunks(pending, chunk_size):
        submit(recommend_chunk, run_id, chunk, top_n)
    return len(pending)


def finish_if_complete(run_id: str) -> bool:
    """Mark `run_id` finished once every known user has a list; return whether it is finished."""
    total = len(store.list_user_ids())
    written = store.count_finished_users(run_id)
    if written < total:
        return False
    store.finish_run(run_id, user_count=written, details={"finished_by": "last chunk"})
    return True


def _wait_for_workers(
    run_id: str,
    total: int,
    *,
    progress: Callable[[int, int], None] | None,
    interval_s: float,
    timeout_s: float | None,
) -> int:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    written = store.count_finished_users(run_id)
    while written < total and (deadline is None or time.monotonic() < deadline):
        time.sleep(interval_s)
        written = store.count_finished_users(run_id)
        if progress is not None:
            progress(written, total)
    return written
