"""Item records, duplicate merging, item texts, file readers and the preference rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from services.recommender.behaviour import InteractionLog, build_preferences
from services.recommender.catalogue import (
    ItemRecord,
    TagRecord,
    build_catalogue,
    build_item_text,
    merge_item_records,
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
        ("item_id,title\nx,Heat\n", "line 2"),
        ("item_id,title\n-4,Heat\n", "item_id"),
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
