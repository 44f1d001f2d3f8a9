"""Database reads and writes of the recommender; routes and tasks go through here."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.recommender.behaviour import Catalogue, InteractionLog, build_preferences
from services.recommender.catalogue import (
    InteractionRecord,
    ItemRecord,
    TagRecord,
    build_catalogue,
    merge_item_records,
)
from services.recommender.models import (
    Interaction,
    Item,
    RecommendationRow,
    RecommendationRun,
    RecUser,
)
from shared.storage import session_scope

__all__ = [
    "ImportCounts",
    "StoredRecommendation",
    "count_finished_users",
    "create_run",
    "finish_run",
    "finished_user_ids",
    "get_item_records",
    "import_interactions",
    "import_items",
    "latest_run_id",
    "list_user_ids",
    "load_catalogue",
    "load_interaction_log",
    "load_user_interactions",
    "read_recommendations",
    "run_exists",
    "write_user_recommendations",
]

logger = logging.getLogger(__name__)

# Rows per INSERT statement in bulk imports.
_BATCH = 5_000


@dataclass(frozen=True)
class ImportCounts:
    """How many rows an import added, merged into existing ones, or skipped (with why)."""

    added: int
    merged: int = 0
    skipped: int = 0
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredRecommendation:
    """One stored result row."""

    rank: int
    item_id: int
    score: float
    reason: str
    reason_item_id: int | None
    reason_tag: str | None


def _to_datetime(seconds: float) -> dt.datetime | None:
    return None if math.isnan(seconds) else dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _to_seconds(value: dt.datetime | None) -> float:
    if value is None:
        return math.nan
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def import_items(records: Iterable[ItemRecord]) -> ImportCounts:
    """Insert items; an id already stored is merged (tags united, missing fields filled)."""
    merged_records = merge_item_records(records)
    ids = [r.item_id for r in merged_records]
    added = merged = 0
    with session_scope() as session:
        existing = {
            item.id: item
            for start in range(0, len(ids), _BATCH)
            for item in session.scalars(
                select(Item).where(Item.id.in_(ids[start : start + _BATCH]))
            )
        }
        new_rows = []
        for record in merged_records:
            stored = existing.get(record.item_id)
            if stored is None:
                new_rows.append(_item_row(record))
                continue
            combined = merge_item_records([_record_of(stored), record])[0]
            stored.fields = combined.fields
            stored.tags = [tag.text for tag in combined.tags]
            merged += 1
        for start in range(0, len(new_rows), _BATCH):
            session.execute(insert(Item), new_rows[start : start + _BATCH])
        added = len(new_rows)
    logger.info("items imported added=%d merged=%d", added, merged)
    return ImportCounts(added=added, merged=merged)


def _item_row(record: ItemRecord) -> dict[str, object]:
    return {
        "id": record.item_id,
        "title": record.title[:500],
        "fields": record.fields,
        "tags": list(dict.fromkeys(tag.text for tag in record.tags)),
        "item_created_at": _to_datetime(record.created_at),
    }


def _record_of(item: Item) -> ItemRecord:
    return ItemRecord(
        item_id=item.id,
        title=item.title,
        fields=dict(item.fields),
        tags=[TagRecord(tag) for tag in item.tags],
        created_at=_to_seconds(item.item_created_at),
    )


def import_interactions(records: Sequence[InteractionRecord]) -> ImportCounts:
    """Insert interactions, creating unknown users; rows naming unknown items are skipped."""
    with session_scope() as session:
        known_items = set(session.scalars(select(Item.id)))
        known_users = set(session.scalars(select(RecUser.id)))
        rows, problems = [], []
        for number, record in enumerate(records):
            if record.item_id not in known_items:
                problems.append(f"row {number}: item {record.item_id} is not in the catalogue")
                continue
            rows.append(
                {
                    "user_id": record.user_id,
                    "item_id": record.item_id,
                    "kind": record.kind,
                    "value": record.value,
                    "occurred_at": record.time,
                }
            )
        new_users = sorted(
            {record.user_id for record in records if record.item_id in known_items} - known_users
        )
        for start in range(0, len(new_users), _BATCH):
            session.execute(insert(RecUser), [{"id": u} for u in new_users[start : start + _BATCH]])
        for start in range(0, len(rows), _BATCH):
            session.execute(insert(Interaction), rows[start : start + _BATCH])
    logger.info("interactions imported added=%d skipped=%d", len(rows), len(problems))
    return ImportCounts(added=len(rows), skipped=len(problems), problems=tuple(problems[:20]))


def get_item_records(item_ids: Sequence[int] | None = None) -> list[ItemRecord]:
    """Return stored items as records (all of them when `item_ids` is None), by id."""
    with session_scope() as session:
        query = select(Item).order_by(Item.id)
        if item_ids is not None:
            query = query.where(Item.id.in_(list(item_ids)))
        return [_record_of(item) for item in session.scalars(query)]


def load_catalogue() -> Catalogue:
    """Return every stored item as a `Catalogue`."""
    return build_catalogue(get_item_records())


def load_interaction_log(*, like_threshold: float, dislike_threshold: float) -> InteractionLog:
    """Return every stored interaction as an `InteractionLog`."""
    with session_scope() as session:
        rows = session.execute(
            select(
                Interaction.user_id,
                Interaction.item_id,
                Interaction.kind,
                Interaction.value,
                Interaction.occurred_at,
            )
        ).all()
    return _log_of(rows, like_threshold=like_threshold, dislike_threshold=dislike_threshold)


def load_user_interactions(
    user_ids: Sequence[int], *, like_threshold: float, dislike_threshold: float
) -> InteractionLog:
    """Return the interactions of `user_ids` as an `InteractionLog`."""
    with session_scope() as session:
        rows = session.execute(
            select(
                Interaction.user_id,
                Interaction.item_id,
                Interaction.kind,
                Interaction.value,
                Interaction.occurred_at,
            ).where(Interaction.user_id.in_(list(user_ids)))
        ).all()
    return _log_of(rows, like_threshold=like_threshold, dislike_threshold=dislike_threshold)


def _log_of(
    rows: Sequence[Any], *, like_threshold: float, dislike_threshold: float
) -> InteractionLog:
    if not rows:
        return InteractionLog.empty()
    values = np.array([math.nan if r[3] is None else r[3] for r in rows], dtype=np.float32)
    return InteractionLog(
        users=np.array([r[0] for r in rows]),
        items=np.array([r[1] for r in rows]),
        values=values,
        preferences=build_preferences(
            [r[2] for r in rows],
            values,
            like_threshold=like_threshold,
            dislike_threshold=dislike_threshold,
        ),
        times=np.array([r[4] for r in rows], dtype=np.float64),
    )


def list_user_ids() -> list[int]:
    """Return every known user id, ascending."""
    with session_scope() as session:
        return list(session.scalars(select(RecUser.id).order_by(RecUser.id)))


def create_run(run_id: str, *, top_n: int) -> tuple[RecommendationRun, bool]:
    """Return the run named `run_id`, creating it when new; the flag is true for a new run.

    Raises:
        ValueError: If the run exists with another `top_n`.
    """
    with session_scope() as session:
        run = session.scalar(select(RecommendationRun).where(RecommendationRun.run_id == run_id))
        if run is not None:
            if run.top_n != top_n:
                raise ValueError(
                    f"Run {run_id!r} was started with `top_n` {run.top_n}, got {top_n!r}; "
                    "resume it with the same --top-n or choose a new --run-id."
                )
            return run, False
        run = RecommendationRun(run_id=run_id, top_n=top_n, status="running", details={})
        session.add(run)
    return run, True


def finished_user_ids(run_id: str) -> set[int]:
    """Return the users that already have their list in `run_id`."""
    with session_scope() as session:
        return set(
            session.scalars(
                select(RecommendationRow.user_id)
                .where(RecommendationRow.run_id == run_id)
                .distinct()
            )
        )


def count_finished_users(run_id: str) -> int:
    """Return how many users have their list in `run_id`."""
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count(func.distinct(RecommendationRow.user_id))).where(
                    RecommendationRow.run_id == run_id
                )
            )
            or 0
        )


def write_user_recommendations(
    run_id: str, rows_by_user: dict[int, list[dict[str, object]]]
) -> int:
    """Insert the lists of several users in one transaction, skipping users already written.

    When a concurrent writer inserted one of the users first, the unique
    constraints reject the batch; each user is then written on its own.

    Returns:
        The number of users written by this call.
    """
    if not rows_by_user:
        return 0
    done = finished_user_ids_for(run_id, list(rows_by_user))
    pending = {user: rows for user, rows in rows_by_user.items() if user not in done}
    try:
        with session_scope() as session:
            _insert_rows(session, run_id, pending)
        return len(pending)
    except IntegrityError:
        written = 0
        for user, rows in pending.items():
            try:
                with session_scope() as session:
                    _insert_rows(session, run_id, {user: rows})
                written += 1
            except IntegrityError:
                logger.info("recommendations already written run_id=%s user_id=%d", run_id, user)
        return written


def _insert_rows(
    session: Session, run_id: str, rows_by_user: dict[int, list[dict[str, object]]]
) -> None:
    rows = [
        {"run_id": run_id, "user_id": user, **row}
        for user, user_rows in rows_by_user.items()
        for row in user_rows
    ]
    if rows:
        session.execute(insert(RecommendationRow), rows)


def finished_user_ids_for(run_id: str, user_ids: list[int]) -> set[int]:
    """Return which of `user_ids` already have their list in `run_id`."""
    with session_scope() as session:
        return set(
            session.scalars(
                select(RecommendationRow.user_id)
                .where(RecommendationRow.run_id == run_id)
                .where(RecommendationRow.user_id.in_(user_ids))
                .distinct()
            )
        )


def finish_run(run_id: str, *, user_count: int, details: dict[str, object]) -> None:
    """Mark `run_id` finished with its user count."""
    with session_scope() as session:
        run = session.scalar(select(RecommendationRun).where(RecommendationRun.run_id == run_id))
        if run is None:
            raise LookupError(f"Run {run_id!r} not found.")
        run.status = "finished"
        run.user_count = user_count
        run.details = dict(details)
        run.finished_at = dt.datetime.now(dt.UTC)


def latest_run_id() -> str | None:
    """Return the id of the most recently finished run, else the latest started one."""
    with session_scope() as session:
        finished = session.scalar(
            select(RecommendationRun.run_id)
            .where(RecommendationRun.status == "finished")
            .order_by(RecommendationRun.id.desc())
            .limit(1)
        )
        if finished is not None:
            return finished
        return session.scalar(
            select(RecommendationRun.run_id).order_by(RecommendationRun.id.desc()).limit(1)
        )


def read_recommendations(run_id: str, user_id: int) -> list[StoredRecommendation]:
    """Return a user's stored list in `run_id`, by rank."""
    with session_scope() as session:
        rows = session.scalars(
            select(RecommendationRow)
            .where(RecommendationRow.run_id == run_id, RecommendationRow.user_id == user_id)
            .order_by(RecommendationRow.rank)
        )
        return [
            StoredRecommendation(
                rank=row.rank,
                item_id=row.item_id,
                score=row.score,
                reason=row.reason,
                reason_item_id=row.reason_item_id,
                reason_tag=row.reason_tag,
            )
            for row in rows
        ]


def run_exists(run_id: str) -> bool:
    """Return whether a run named `run_id` exists."""
    with session_scope() as session:
        return (
            session.scalar(select(RecommendationRun.id).where(RecommendationRun.run_id == run_id))
            is not None
        )
