"""Item records, duplicate merging, item texts, file readers and the preference rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from services.recommender.behaviour import InteractionLog, build_preferences
from services.recommender.catalogue import (
    MAX_ID,
    InteractionRecord,
    ItemRecord,
    TagRecord,
    build_catalogue,
    build_interaction_log,
    build_item_text,
    merge_item_records,
    parse_id,
    read_interaction_file,
    read_item_file,
)
from shared.errors import DataError, DatasetNotFoundError


def test_merge_item_records_unites_duplicates() -> None:
    """Two records with one id become one: first title, fields filled, tags united."""
    first = ItemRecord(1, "Alien (1979)", {"genres": "Horror"}, [TagRecord("space")], 10.0)
    second = ItemRecord(1, "", {"director": "Scott"}, [TagRecord("space"), TagRecord("科幻")], 5.0)
    merged = merge_item_records([first, second, ItemRecord(2, "Heat", {}, [], math.nan)])
    assert [r.item_id for r in merged] == [1, 2]
    assert merged[0].title == "Alien (1979)"
    assert merged[0].fields == {"genres": "Horror", "director": "Scott"}
    assert [t.text for t in merged[0].tags] == ["space", "科幻"]
    assert merged[0].created_at == 5.0


def test_build_item_text_leaves_out_tags_after_cut() -> None:
    """A tag applied at or after the cut is not part of the text."""
    record = ItemRecord(
        1,
        "Heat (1995)",
        {"genres": "Crime"},
        [TagRecord("pacino", 100.0), TagRecord("heist", 200.0)],
    )
    assert build_item_text(record, cut=150.0) == "Heat (1995). genres: Crime. tags: pacino"
    assert "heist" in build_item_text(record)


def test_build_catalogue_rejects_nothing_and_maps_rows() -> None:
    """Rows map back from ids; unknown ids map to -1."""
    catalogue = build_catalogue(
        [ItemRecord(7, "a", {}, []), ItemRecord(3, "b", {}, []), ItemRecord(7, "c", {}, [])]
    )
    assert len(catalogue) == 2
    assert catalogue.rows_of(np.array([3, 7, 99, -1])).tolist() == [1, 0, -1, -1]


def test_read_item_file_csv_and_jsonl(tmp_path: Path) -> None:
    """CSV and JSON Lines items read alike; mixed Chinese and English text survives."""
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(
        "item_id,title,genres,tags\n1,流浪地球 The Wandering Earth,科幻|Sci-Fi,space|地球\n"
        "1,流浪地球 The Wandering Earth,,extra\n",
        encoding="utf-8",
    )
    jsonl_path = tmp_path / "items.jsonl"
    jsonl_path.write_text(
        json.dumps({"item_id": 2, "title": "Heat", "tags": ["crime"], "created_at": 10}) + "\n\n",
        encoding="utf-8",
    )
    items = read_item_file(csv_path) + read_item_file(jsonl_path)
    assert [i.item_id for i in items] == [1, 2]
    assert [t.text for t in items[0].tags] == ["space", "地球", "extra"]
    assert items[0].fields == {"genres": "科幻|Sci-Fi"}
    assert items[1].created_at == 10.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("item_id,title\n1.5,Heat\n", "line 2"),
        ("item_id,title\n-4,Heat\n", "item_id"),
        ("item_id,title\n0,Heat\n", "item_id"),
        ("item_id,title\n,Heat\n", "`item_id` is missing or empty"),
        ("item_id,title\n3,   \n", "title"),
        ("title\nHeat\n", "item_id"),
    ],
)
def test_read_item_file_names_bad_row(tmp_path: Path, text: str, fragment: str) -> None:
    """A malformed row raises DataError naming the line or the field."""
    path = tmp_path / "items.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=fragment):
        read_item_file(path)


def test_read_interaction_file_kinds(tmp_path: Path) -> None:
    """A value makes a rating by default; a row without value is a click."""
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,value,time,kind\n1,2,4.5,100,\n1,3,,101,\n2,3,,102,dislike\n",
        encoding="utf-8",
    )
    records = read_interaction_file(path)
    assert [r.kind for r in records] == ["rating", "click", "dislike"]


def test_read_interaction_file_rejects_rating_without_value(tmp_path: Path) -> None:
    """A rating needs a value; the message names the line."""
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": 1, "item_id": 2, "kind": "rating", "time": 5}\n')
    with pytest.raises(DataError, match="line 1"):
        read_interaction_file(path)


def test_read_item_file_missing_and_unsupported(tmp_path: Path) -> None:
    """A missing file and an unknown suffix raise clear errors."""
    with pytest.raises(DatasetNotFoundError):
        read_item_file(tmp_path / "nope.csv")
    (tmp_path / "items.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"\.xlsx"):
        read_item_file(tmp_path / "items.xlsx")


def test_build_preferences_rule() -> None:
    """Ratings split at the thresholds; likes and clicks are likes; dislikes are dislikes."""
    kinds = ["rating", "rating", "rating", "click", "dislike", "like"]
    values = np.array([4.0, 3.0, 2.0, np.nan, np.nan, np.nan])
    preferences = build_preferences(kinds, values, like_threshold=4.0, dislike_threshold=2.0)
    assert preferences.tolist() == [1, 0, -1, 1, -1, 1]


def test_build_preferences_rejects_unknown_kind() -> None:
    """An unknown kind names the allowed ones."""
    with pytest.raises(DataError, match="'wish'"):
        build_preferences(["wish"], np.array([np.nan]), like_threshold=4, dislike_threshold=2)


def test_interaction_log_sorted_by_time() -> None:
    """The log is sorted by time on construction and `before` cuts strictly."""
    log = InteractionLog(
        users=[2, 1, 1],
        items=[5, 6, 7],
        values=[1, 2, 3],
        preferences=[0, 0, 0],
        times=[30.0, 10.0, 20.0],
    )
    assert log.times.tolist() == [10.0, 20.0, 30.0]
    assert len(log.before(20.0)) == 1


def test_merge_item_records_later_record_updates() -> None:
    """A repeated id updates the title and the fields it names; tags are united."""
    first = ItemRecord(1, "Alien", {"genres": "Horror", "year": "1979"}, [TagRecord("space")])
    second = ItemRecord(
        1, "Alien (Director's Cut)", {"genres": "Horror, Sci-Fi"}, [TagRecord("科幻")]
    )
    merged = merge_item_records([first, second])
    assert len(merged) == 1
    assert merged[0].title == "Alien (Director's Cut)"
    assert merged[0].fields == {"genres": "Horror, Sci-Fi", "year": "1979"}
    assert [t.text for t in merged[0].tags] == ["space", "科幻"]


def test_merge_item_records_keys_by_external_id() -> None:
    """Records named by string id merge with each other, never with an integer id."""
    records = [
        ItemRecord(None, "Tea", external_id="sku-1"),
        ItemRecord(1, "Coffee"),
        ItemRecord(None, "Green tea", external_id="sku-1"),
    ]
    merged = merge_item_records(records)
    assert [(r.item_id, r.external_id, r.title) for r in merged] == [
        (None, "sku-1", "Green tea"),
        (1, None, "Coffee"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        ("42", 42),
        (" 7 ", 7),
        (MAX_ID, MAX_ID),
        ("sku-00123", "sku-00123"),
        ("  sku-7 ", "sku-7"),
        ("007", "007"),
        ("4006381333931", "4006381333931"),
        (MAX_ID + 1, str(MAX_ID + 1)),
        ("书-12", "书-12"),
    ],
)
def test_parse_id_key_or_string(value: object, expected: int | str) -> None:
    """Integers from 1 to MAX_ID are keys; any other text is a string id."""
    assert parse_id(value, name="item_id") == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "from 1"),
        ("0", "from 1"),
        ("000", "from 1"),
        (-4, "from 1"),
        ("-4", "from 1"),
        ("+5", "from 1"),
        ("1.5", "decimal"),
        ("12.0", "decimal"),
        (12.0, "integer or a string"),
        (True, "integer or a string"),
        (None, "integer or a string"),
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 201, "at most 200"),
        ("sku\x001", "NUL"),
    ],
)
def test_parse_id_rejects_bad_value(value: object, fragment: str) -> None:
    """Zero, signs, fractions, booleans, blanks and overlong text are errors naming the field."""
    with pytest.raises(ValueError, match=fragment) as raised:
        parse_id(value, name="item_id")
    assert "`item_id`" in str(raised.value)


def test_read_files_with_string_ids(tmp_path: Path) -> None:
    """SKU-style ids and Chinese titles with ASCII ids are read as string ids, not errors."""
    items = tmp_path / "items.csv"
    items.write_text(
        "item_id,title,description\n"
        "sku-00123,流浪地球,科幻电影\n"
        "sku-00124,Heat,crime\n"
        "17,Alien,horror\n"
        "sku-00123,流浪地球 2,续集\n",
        encoding="utf-8",
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"user_id": "u-alice", "item_id": "sku-00123", "time": 5}\n'
        '{"user_id": 8, "item_id": 17, "time": 6, "kind": "like"}\n',
        encoding="utf-8",
    )

    records = read_item_file(items)
    interactions = read_interaction_file(events)

    assert [(r.item_id, r.external_id) for r in records] == [
        (None, "sku-00123"),
        (None, "sku-00124"),
        (17, None),
    ]
    assert records[0].title == "流浪地球 2"
    assert records[0].fields == {"description": "续集"}
    assert interactions[0].user_id is None
    assert interactions[0].user_external_id == "u-alice"
    assert interactions[0].item_external_id == "sku-00123"
    assert (interactions[1].user_id, interactions[1].item_id) == (8, 17)
    assert interactions[1].user_external_id is None


@pytest.mark.parametrize(
    ("name", "text", "column"),
    [
        ("items.csv", "sku,title\nsku-1,Tea\n", "item_id"),
        ("items.csv", "item_id,name\n1,Tea\n", "title"),
        ("items.csv", "", "item_id"),
        ("items.jsonl", '{"sku": "a", "title": "Tea"}\n', "item_id"),
    ],
)
def test_read_item_file_names_missing_column(
    tmp_path: Path, name: str, text: str, column: str
) -> None:
    """A file without a required column says which column is missing and how to fix it."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as raised:
        read_item_file(path)
    message = str(raised.value)
    assert f"no `{column}` column" in message
    assert f"add a `{column}` column" in message


def test_read_interaction_file_names_missing_user_column(tmp_path: Path) -> None:
    """The interaction reader names a missing `user_id` column and lists the columns found."""
    path = tmp_path / "events.csv"
    path.write_text("customer,item_id,time\nc1,1,5\n", encoding="utf-8")
    with pytest.raises(DataError) as raised:
        read_interaction_file(path)
    assert "no `user_id` column" in str(raised.value)
    assert "'customer'" in str(raised.value)


def test_read_item_file_rejects_non_object_line(tmp_path: Path) -> None:
    """A JSON line that is not an object is an error naming the line."""
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": 1, "title": "Tea"}\n[2, "Coffee"]\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        read_item_file(path)


def test_build_needs_keys_for_string_ids() -> None:
    """Records that still carry only a string id cannot become a catalogue or a log."""
    with pytest.raises(ValueError, match="'sku-1'"):
        build_catalogue([ItemRecord(None, "Tea", external_id="sku-1")])
    record = InteractionRecord(None, 1, "like", None, 5.0, user_external_id="u-1")
    with pytest.raises(ValueError, match="'u-1'"):
        build_interaction_log([record], like_threshold=4.0, dislike_threshold=2.0)
