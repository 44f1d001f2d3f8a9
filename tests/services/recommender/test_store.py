"""Imports into the database: repeated ids update the stored item, string ids get keys."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from services.recommender import store
from services.recommender.catalogue import InteractionRecord, ItemRecord, TagRecord

BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def _interaction(user: int | str, item: int | str, time: float) -> InteractionRecord:
    return InteractionRecord(
        user_id=user if isinstance(user, int) else None,
        item_id=item if isinstance(item, int) else None,
        kind="click",
        value=None,
        time=time,
        user_external_id=user if isinstance(user, str) else None,
        item_external_id=item if isinstance(item, str) else None,
    )


@BOTH_DATABASES
def test_import_items_repeat_updates_stored_item(database_url: str) -> None:
    """A second import of an id updates title, fields and tags instead of keeping the old row."""
    first = ItemRecord(1, "Alien", {"genres": "Horror", "year": "1979"}, [TagRecord("space")])
    store.import_items([first, ItemRecord(2, "Heat")])

    counts = store.import_items(
        [ItemRecord(1, "Alien (Director's Cut)", {"genres": "Horror, Sci-Fi"}, [TagRecord("科幻")])]
    )
    again = store.import_items([ItemRecord(1, "Alien (Director's Cut)"), ItemRecord(2, "Heat")])

    stored = store.get_item_records([1])[0]
    assert (counts.added, counts.updated, counts.unchanged) == (0, 1, 0)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    assert stored.title == "Alien (Director's Cut)"
    assert stored.fields == {"genres": "Horror, Sci-Fi", "year": "1979"}
    assert [tag.text for tag in stored.tags] == ["space", "科幻"]


@BOTH_DATABASES
def test_import_items_earlier_creation_time_updates(database_url: str) -> None:
    """An earlier creation time replaces a later one; a later one leaves it alone."""
    store.import_items([ItemRecord(1, "Heat", created_at=500.0)])

    later = store.import_items([ItemRecord(1, "Heat", created_at=900.0)])
    earlier = store.import_items([ItemRecord(1, "Heat", created_at=100.0)])

    assert later.unchanged == 1
    assert earlier.updated == 1
    assert store.get_item_records([1])[0].created_at == 100.0


@BOTH_DATABASES
def test_import_string_ids_get_free_keys(database_url: str) -> None:
    """String ids get keys after the largest integer id and keep them on re-import."""
    counts = store.import_items(
        [
            ItemRecord(None, "流浪地球", external_id="sku-00123"),
            ItemRecord(5, "Heat"),
            ItemRecord(None, "Alien", external_id="sku-00124"),
        ]
    )
    keys = {r.external_id: r.item_id for r in store.get_item_records()}

    updated = store.import_items([ItemRecord(None, "流浪地球 2", external_id="sku-00123")])
    added = store.import_items([ItemRecord(None, "Tea", external_id="sku-9")])
    after = {r.external_id: r for r in store.get_item_records()}

    assert counts.added == 3
    assert keys == {"sku-00123": 6, None: 5, "sku-00124": 7}
    assert updated.updated == 1
    assert after["sku-00123"].item_id == 6
    assert after["sku-00123"].title == "流浪地球 2"
    assert added.added == 1
    assert after["sku-9"].item_id == 8


@BOTH_DATABASES
def test_import_interactions_resolves_string_ids(database_url: str) -> None:
    """String user and item ids map to keys; unknown and mismatched ids are skipped with why."""
    store.import_items([ItemRecord(None, "Tea", external_id="sku-1"), ItemRecord(3, "Coffee")])
    tea = store.get_item_records()[-1]
    assert tea.external_id == "sku-1"

    counts = store.import_interactions(
        [
            _interaction("u-alice", "sku-1", 1.0),
            _interaction("u-alice", 3, 2.0),
            _interaction(9, "sku-1", 3.0),
            _interaction("u-bob", "sku-404", 4.0),
            _interaction("u-carol", tea.item_id, 5.0),
        ]
    )

    alice = store.find_user_key("u-alice")
    assert counts.added == 3
    assert counts.skipped == 2
    assert "item 'sku-404' is not in the catalogue" in counts.problems[0]
    assert f"item {tea.item_id} was stored with the string id 'sku-1'" in counts.problems[1]
    assert alice == 10
    assert store.find_user_key("u-bob") is None
    assert store.find_user_key("u-carol") is None
    assert store.get_user_external_id(alice) == "u-alice"
    assert store.list_user_ids() == [9, 10]
    log = store.load_user_interactions([alice], like_threshold=4.0, dislike_threshold=2.0)
    assert sorted(log.items.tolist()) == [3, tea.item_id]


def _run_together(*jobs: Callable[[], object]) -> list[BaseException]:
    """Run each job in its own thread, all released at once; return what they raised."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@BOTH_DATABASES
def test_concurrent_imports_of_string_ids_all_get_keys(database_url: str) -> None:
    """Two imports that run at once both pick free keys; neither fails on a taken one."""
    batches = [
        [ItemRecord(None, f"{prefix} {n}", external_id=f"{prefix}-{n}") for n in range(1500)]
        for prefix in ("sku", "货号")
    ]

    errors = _run_together(*(lambda batch=batch: store.import_items(batch) for batch in batches))

    records = store.get_item_records()
    assert errors == []
    assert len(records) == 3000
    assert len({record.item_id for record in records}) == 3000
    assert {record.external_id for record in records} == {
        record.external_id for batch in batches for record in batch
    }


@BOTH_DATABASES
def test_concurrent_interaction_imports_create_each_user_once(database_url: str) -> None:
    """Interactions of new string-id users imported at once give every user one key."""
    store.import_items([ItemRecord(1, "Heat"), ItemRecord(2, "Alien")])
    batches = [
        [_interaction(f"{prefix}-{n}", 1 + n % 2, float(n)) for n in range(1500)]
        for prefix in ("u", "用户")
    ]

    errors = _run_together(*(lambda b=batch: store.import_interactions(b) for batch in batches))

    assert errors == []
    for prefix in ("u", "用户"):
        keys = {store.find_user_key(f"{prefix}-{n}") for n in range(1500)}
        assert None not in keys
        assert len(keys) == 1500


@BOTH_DATABASES
def test_import_items_conflict_writes_nothing(database_url: str) -> None:
    """An integer id equal to the key of a string-id item is an error, and the import is undone."""
    store.import_items([ItemRecord(None, "Tea", external_id="sku-1")])

    with pytest.raises(store.IdConflictError, match="'sku-1'"):
        store.import_items([ItemRecord(2, "Coffee"), ItemRecord(1, "Not tea")])

    assert [(r.item_id, r.title) for r in store.get_item_records()] == [(1, "Tea")]


@BOTH_DATABASES
def test_upsert_item_reports_change(database_url: str) -> None:
    """A single write reports its change and gives a new item the default creation time."""
    record = ItemRecord(None, "Tea", external_id="sku-1")

    created, first = store.upsert_item(record, default_created_at=1_000.0)
    _, second = store.upsert_item(record, default_created_at=2_000.0)
    updated, third = store.upsert_item(
        ItemRecord(created.item_id, "Green tea", external_id="sku-1")
    )

    assert (first, second, third) == ("created", "unchanged", "updated")
    assert created.created_at == 1_000.0
    assert updated.title == "Green tea"
    assert updated.item_id == created.item_id
    with pytest.raises(store.IdConflictError, match="has the key 1, not 7"):
        store.upsert_item(ItemRecord(7, "Tea", external_id="sku-1"))


@BOTH_DATABASES
def test_migrations_match_recommender_tables(database_url: str) -> None:
    """The migrated schema has every column and constraint the table classes declare."""
    import sqlalchemy
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from services.recommender import models

    engine = sqlalchemy.create_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), models.Item.metadata)
    engine.dispose()
    recommender = [d for d in differences if "reco_" in repr(d)]
    assert recommender == []
