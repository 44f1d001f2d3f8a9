"""Items from files: the StockNet tweets in time order, and JSONL or CSV files of items."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.errors import DataError

__all__ = ["iter_item_file", "iter_stocknet_items", "replay_delays"]


def iter_stocknet_items(data_dir: Path, *, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Yield the StockNet tweets as items, in file (time) order.

    The item id is ``stocknet-<line>``; the tweet's ticker is sent as its entity.

    Raises:
        DatasetNotFoundError: The tweets file is missing.
        DataError: A line is not a tweet object.
    """
    from pipelines.datasets._files import require_dataset_file

    path = require_dataset_file(data_dir, "stocknet-tweets-subset", "tweets.jsonl")
    with path.open(encoding="utf-8") as handle:
        count = 0
        for line_number, line in enumerate(handle, 1):
            if limit is not None and count >= limit:
                return
            if not line.strip():
                continue
            try:
                tweet = json.loads(line)
                item = {
                    "id": f"stocknet-{line_number}",
                    "source": "stocknet",
                    "published_at": tweet["created_at"],
                    "text": tweet["text"],
                    "entities": [tweet["ticker"]],
                }
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{str(path)!r} line {line_number} is not a tweet: {exc}") from None
            count += 1
            yield item


def iter_item_file(path: Path) -> Iterator[dict[str, Any]]:
    """Yield items from a JSONL file (one object a line) or a CSV file with a header.

    CSV columns: `id`, `published_at`, `text`, optional `source` and `entities`
    (symbols separated by ``|``).

    Raises:
        DataError: The file is missing, is not UTF-8, or a JSONL line is not an object.
    """
    if not path.is_file():
        raise DataError(f"item file {str(path)!r} not found; check the path.")
    try:
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as handle:
                for row in csv.DictReader(handle):
                    entities = [e for e in (row.get("entities") or "").split("|") if e.strip()]
                    yield {
                        **{k: v for k, v in row.items() if k != "entities"},
                        "entities": entities,
                    }
            return
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise DataError(
                        f"{str(path)!r} line {line_number} is not JSON: {exc}"
                    ) from None
                if not isinstance(value, dict):
                    raise DataError(f"{str(path)!r} line {line_number} must be a JSON object.")
                yield value
    except UnicodeDecodeError as exc:
        raise DataError(
            f"item file {str(path)!r} is not UTF-8 ({exc}); save it as UTF-8."
        ) from None


def replay_delays(published: list[str], speed: float) -> list[float]:
    """Seconds to wait before each item so that `speed` seconds of published time pass per second.

    A speed of 0 means no waiting; an item older than its predecessor waits 0.
    """
    if speed <= 0 or not published:
        return [0.0] * len(published)
    times = [dt.datetime.fromisoformat(value.replace("Z", "+00:00")) for value in published]
    delays = [0.0]
    for previous, current in itertools.pairwise(times):
        delays.append(max((current - previous).total_seconds(), 0.0) / speed)
    return delays
