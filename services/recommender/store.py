"""Database reads and writes of the recommender; routes and tasks go through here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.recommender.behaviour import Catalogue, InteractionLog, build_preferences
from services.recommender.catalogue import (
    MAX_ID,
    InteractionRecord,
    ItemRecord,
    TagRecord,
    build_catalogue,
    merge_item_records,
    update_item_record,
)
from services.recommender.models import (
    Interaction,
    Item,
    RecommendationRow,
    RecommendationRun,
    RecUser,
)
from shared.errors import DataError
from shared.storage import session_scope

__all__ = [
    "IdConflictError",
    "ImportCounts",
    "ItemChange",
    "StoredRecommendation",
    "count_finished_users",
    "create_run",
    "find_user_key",
    "finish_run",
    "finished_user_ids",
    "get_item_external_ids",
    "get_item_records",
    "get_user_external_id",
    "import_interactions",
    "import_items",
    "latest_run_id",
    "list_user_ids",
    "load_catalogue",
    "load_interaction_log",
    "load_user_interactions",
    "read_recommendations",
    "run_exists",
    "upsert_item",
    "write_user_recommendations",
]

logger = logging.getLogger(__name__)

# Rows per INSERT statement, and ids per IN list, in bulk imports.
_BATCH = 5_000
# Attempts of a single item write that races with another writer for a new key.
_WRITE_ATTEMPTS = 3
_T = TypeVar("_T")

ItemChange = Literal["created", "updated", "unchanged"]


class IdConflictError(DataError):
    """An integer id and a string id name different items (or users) for the same key."""


@dataclass(frozen=True)
class ImportCounts:
    """How many rows an import added, updated, found unchanged, or skipped (with why)."""

    added: int
    updated: int = 0
    unchanged: int = 0
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
    """Insert new items and update stored ones, in one transaction.

    Records with the same id are merged first (later ones win, see
    `catalogue.update_item_record`). A stored item is updated the same way: a
    non-empty title replaces its title, text fields are overwritten field by
    field and tags are united. String ids get free keys.

    Raises:
        IdConflictError: If an id names an item whose key belongs to another id;
            nothing is written then.
    """
    unique = merge_item_records(records)

    def write() -> Counter[ItemChange]:
        with session_scope() as session:
            return Counter(change for _key, change in _write_items(session, unique))

    changes = _retry_on_key_race(write, what="item import")
    counts = ImportCounts(
        added=changes["created"], updated=changes["updated"], unchanged=changes["unchanged"]
    )
    logger.info(
        "items imported added=%d updated=%d unchanged=%d",
        counts.added,
        counts.updated,
        counts.unchanged,
    )
    return counts


def upsert_item(
    record: ItemRecord, *, default_created_at: float = math.nan
) -> tuple[ItemRecord, ItemChange]:
    """Insert one item or update the stored item with its id, as `import_items` does.

    Args:
        record: The item.
        default_created_at: Creation time (Unix seconds) given to a new item whose
            record has none; a stored item keeps its own.

    Returns:
        The stored item and whether it was created, updated or already equal.

    Raises:
        IdConflictError: If the record's key and external id name different items.
    """

    def write() -> tuple[int, ItemChange]:
        with session_scope() as session:
            [written] = _write_items(session, [record], default_created_at=default_created_at)
        return written

    key, change = _retry_on_key_race(write, what=f"item {record.caller_id!r}")
    return get_item_records([key])[0], change


def _retry_on_key_race(write: Callable[[], _T], *, what: str) -> _T:
    """Run `write`, one transaction, again when a concurrent writer took its key first.

    Keys for new string ids are picked after the largest stored key, so two
    writers running at once can pick the same one. The later commit then fails
    on the primary key (or on the external id) and rolls back whole. The next
    attempt reads the rows the other writer committed.
    """
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        try:
            return write()
        except IntegrityError:
            if attempt == _WRITE_ATTEMPTS:
                raise
            logger.info("%s raced with another writer, retrying attempt=%d", what, attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _write_items(
    session: Session, records: Sequence[ItemRecord], *, default_created_at: float = math.nan
) -> list[tuple[int, ItemChange]]:
    by_key, by_external = _find_items(session, records)
    next_key = _next_free_key(session, Item, [r.item_id for r in records])
    claimed: dict[int, int | str] = {}
    new_rows, results = [], []
    for record in records:
        stored = _match_item(record, by_key, by_external)
        if stored is not None:
            results.append((stored.id, _update_item(stored, record)))
            continue
        key = record.item_id
        if key is None:
            key, next_key = next_key, next_key + 1
        if key > MAX_ID:
            raise DataError(
                f"No free item key is left up to {MAX_ID}, so item {record.caller_id!r} "
                "cannot be stored."
            )
        if key in claimed:
            raise IdConflictError(
                f"Items {claimed[key]!r} and {record.caller_id!r} both claim the key {key}; "
                "give each item one id."
            )
        claimed[key] = record.caller_id
        if math.isnan(record.created_at):
            record = dataclasses.replace(record, created_at=default_created_at)
        new_rows.append(_item_row(record, key))
        results.append((key, "created"))
    for start in range(0, len(new_rows), _BATCH):
        session.execute(insert(Item), new_rows[start : start + _BATCH])
    return results


def _find_items(
    session: Session, records: Sequence[ItemRecord]
) -> tuple[dict[int, Item], dict[str, Item]]:
    keys = [r.item_id for r in records if r.item_id is not None]
    external_ids = [r.external_id for r in records if r.external_id is not None]
    found: list[Item] = []
    for start in range(0, len(keys), _BATCH):
        found += session.scalars(select(Item).where(Item.id.in_(keys[start : start + _BATCH])))
    for start in range(0, len(external_ids), _BATCH):
        chunk = external_ids[start : start + _BATCH]
        found += session.scalars(select(Item).where(Item.external_id.in_(chunk)))
    by_key = {item.id: item for item in found}
    by_external = {item.external_id: item for item in found if item.external_id is not None}
    return by_key, by_external


def _match_item(
    record: ItemRecord, by_key: dict[int, Item], by_external: dict[str, Item]
) -> Item | None:
    if record.external_id is not None:
        stored = by_external.get(record.external_id)
        if stored is not None and record.item_id not in (None, stored.id):
            raise IdConflictError(
                f"Item {record.external_id!r} has the key {stored.id}, not {record.item_id}; "
                "send its `external_id` alone, or with its own key."
            )
        if stored is None and record.item_id in by_key:
            raise IdConflictError(
                f"The key {record.item_id} belongs to item "
                f"{by_key[record.item_id].external_id or record.item_id!r}, not to "
                f"{record.external_id!r}; send the `external_id` alone to get a free key."
            )
        return stored
    stored = by_key.get(record.item_id) if record.item_id is not None else None
    if stored is not None and stored.external_id is not None:
        raise IdConflictError(
            f"Item {stored.id} was stored with the string id {stored.external_id!r}; "
            "update it by that `external_id`, or give every item an integer id."
        )
    return stored


def _update_item(stored: Item, record: ItemRecord) -> ItemChange:
    before = _record_of(stored)
    after = update_item_record(before, record)
    row = _item_row(after, stored.id)
    if (
        row["title"] == stored.title
        and row["fields"] == stored.fields
        and row["tags"] == stored.tags
        and _same_time(after.created_at, before.created_at)
    ):
        return "unchanged"
    stored.title = row["title"]
    stored.fields = row["fields"]
    stored.tags = row["tags"]
    stored.item_created_at = row["item_created_at"]
    return "updated"


def _same_time(first: float, second: float) -> bool:
    return (math.isnan(first) and math.isnan(second)) or first == second


def _next_free_key(
    session: Session, table: type[Item] | type[RecUser], keys: Iterable[int | None]
) -> int:
    """Return the key after every stored key and every integer key about to be written."""
    # Two writers running at once can pick the same key: see `_retry_on_key_race`.
    stored = session.scalar(select(func.max(table.id))) or 0
    return max([stored, *(key for key in keys if key is not None)]) + 1


def _item_row(record: ItemRecord, key: int) -> dict[str, Any]:
    return {
        "id": key,
        "external_id": record.external_id,
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
        external_id=item.external_id,
    )


def import_interactions(records: Sequence[InteractionRecord]) -> ImportCounts:
    """Insert interactions, creating unknown users; rows naming unknown items are skipped.

    Users and items named by a string id are looked up by external id, and a
    new user named so gets a free key. A row is skipped, with the reason among
    the returned problems, when its item is not in the catalogue or when an
    integer id names a user or item that was stored under a string id.
    """
    rows, problems = _retry_on_key_race(
        lambda: _write_interactions(records), what="interaction import"
    )
    logger.info("interactions imported added=%d skipped=%d", len(rows), len(problems))
    return ImportCounts(added=len(rows), skipped=len(problems), problems=tuple(problems[:20]))


def _write_interactions(
    records: Sequence[InteractionRecord],
) -> tuple[list[dict[str, Any]], list[str]]:
    with session_scope() as session:
        items = _KeyMap.load(session, Item)
        users = _KeyMap.load(session, RecUser)
        users.reserve(record.user_id for record in records)
        rows, problems = [], []
        for number, record in enumerate(records):
            try:
                item_key = items.find(record.item_id, record.item_external_id, kind="item")
                user_key = users.find_or_add(record.user_id, record.user_external_id)
            except LookupError as exc:
                problems.append(f"row {number}: {exc}")
                continue
            rows.append(
                {
                    "user_id": user_key,
                    "item_id": item_key,
                    "kind": record.kind,
                    "value": record.value,
                    "occurred_at": record.time,
                }
            )
        new_users = [{"id": key, "external_id": users.external_ids[key]} for key in users.added]
        for start in range(0, len(new_users), _BATCH):
            session.execute(insert(RecUser), new_users[start : start + _BATCH])
        for start in range(0, len(rows), _BATCH):
            session.execute(insert(Interaction), rows[start : start + _BATCH])
    return rows, problems


class _KeyMap:
    """The stored keys of a table with their external ids, and the keys added during an import."""

    def __init__(self, external_ids: dict[int, str | None]) -> None:
        self.external_ids = external_ids
        self.by_external = {ext: key for key, ext in external_ids.items() if ext is not None}
        self.added: list[int] = []
        self.next_key = max(external_ids, default=0) + 1

    @classmethod
    def load(cls, session: Session, table: type[Item] | type[RecUser]) -> _KeyMap:
        rows = session.execute(select(table.id, table.external_id)).all()
        return cls({key: external_id for key, external_id in rows})

    def reserve(self, keys: Iterable[int | None]) -> None:
        """Keep new string ids off the integer keys that the import is about to use."""
        self.next_key = max([self.next_key - 1, *(k for k in keys if k is not None)]) + 1

    def find(self, key: int | None, external_id: str | None, *, kind: str) -> int:
        """Return the stored key for an id, or raise LookupError saying why there is none."""
        if external_id is not None:
            if external_id not in self.by_external:
                raise LookupError(f"{kind} {external_id!r} is not in the catalogue")
            return self.by_external[external_id]
        if key not in self.external_ids:
            raise LookupError(f"{kind} {key} is not in the catalogue")
        stored_external = self.external_ids[key]
        if stored_external is not None:
            raise LookupError(
                f"{kind} {key} was stored with the string id {stored_external!r}; name it by "
                "that id"
            )
        return key

    def find_or_add(self, key: int | None, external_id: str | None) -> int:
        """Return the key for a user id, adding the user when it is new."""
        if external_id is not None and external_id not in self.by_external:
            if self.next_key > MAX_ID:
                raise LookupError(f"no free user key is left for {external_id!r}")
            self.by_external[external_id] = self.next_key
            self.external_ids[self.next_key] = external_id
            self.added.append(self.next_key)
            self.next_key += 1
        if external_id is None and key is not None and key not in self.external_ids:
            self.external_ids[key] = None
            self.added.append(key)
        return self.find(key, external_id, kind="user")


def get_item_records(item_ids: Sequence[int] | None = None) -> list[ItemRecord]:
    """Return stored items as records (all of them when `item_ids` is None), by id."""
    with session_scope() as session:
        query = select(Item).order_by(Item.id)
        if item_ids is not None:
            query = query.where(Item.id.in_(list(item_ids)))
        return [_record_of(item) for item in session.scalars(query)]


def get_item_external_ids(item_ids: Sequence[int]) -> dict[int, str]:
    """Return the external ids of those `item_ids` that have one."""
    found: dict[int, str] = {}
    keys = list(item_ids)
    with session_scope() as session:
        for start in range(0, len(keys), _BATCH):
            rows = session.execute(
                select(Item.id, Item.external_id).where(
                    Item.id.in_(keys[start : start + _BATCH]), Item.external_id.is_not(None)
                )
            ).all()
            found.update((key, external_id) for key, external_id in rows if external_id)
    return found


def find_user_key(external_id: str) -> int | None:
    """Return the key of the user stored with `external_id`, or None when there is none."""
    with session_scope() as session:
        return session.scalar(select(RecUser.id).where(RecUser.external_id == external_id))


def get_user_external_id(user_id: int) -> str | None:
    """Return the external id of the user with key `user_id`, or None."""
    with session_scope() as session:
        return session.scalar(select(RecUser.external_id).where(RecUser.id == user_id))


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
