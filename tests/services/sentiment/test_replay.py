"""File sources of items: the StockNet replay order, pacing, and JSONL or CSV files."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.sentiment.replay import iter_item_file, iter_stocknet_items, replay_delays
from shared.errors import DataError


def test_stocknet_items_keep_time_order(data_dir: Path) -> None:
    """Replayed tweets come in published order, with the ticker as given entity."""
    items = list(iter_stocknet_items(data_dir, limit=500))
    assert len(items) == 500
    assert [item["published_at"] for item in items] == sorted(i["published_at"] for i in items)
    assert items[0]["id"] == "stocknet-1"
    assert items[0]["entities"] == ["GOOG"]


def test_replay_delays_follow_speed() -> None:
    """At speed 3600 one hour of published time takes one second; speed 0 never waits."""
    published = ["2014-01-01T00:00:00+00:00", "2014-01-01T01:00:00+00:00", "2014-01-01T00:30:00Z"]
    assert replay_delays(published, 3600) == [0.0, 1.0, 0.0]
    assert replay_delays(published, 0) == [0.0, 0.0, 0.0]


def test_item_files_jsonl_and_csv(tmp_path: Path) -> None:
    """JSONL lines and CSV rows (entities split at |) become item dicts."""
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text('{"id": "a", "text": "茅台"}\n\n{"id": "b"}\n', encoding="utf-8")
    csv_file = tmp_path / "items.csv"
    csv_file.write_text(
        "id,published_at,text,entities\nc,2024-01-01T00:00:00Z,Pfizer up,PFE|MRK\n",
        encoding="utf-8",
    )
    assert [item["id"] for item in iter_item_file(jsonl)] == ["a", "b"]
    assert [item["entities"] for item in iter_item_file(csv_file)] == [["PFE", "MRK"]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"id": 1}\n[1, 2]\n', "must be a JSON object"),
        (b"{oops\n", "not JSON"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_item_file_errors(tmp_path: Path, content: bytes, message: str) -> None:
    """Malformed files raise DataError naming the line or the encoding."""
    path = tmp_path / "items.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        list(iter_item_file(path))
