"""Reader for MovieLens ml-latest-small (GroupLens, 2018): movies, tags and ratings.

Item text is the title (with its year), the genres and the free-text user tags;
each tag keeps its timestamp so that an evaluation can leave out tags written
after its cut. An item's creation time is 1 January of the year in its title.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

from pipelines.datasets._files import read_csv_records, require_dataset_file, resolve_data_dir
from services.recommender.catalogue import InteractionRecord, ItemRecord, TagRecord

__all__ = ["MOVIELENS_FOLDER", "read_movielens"]

MOVIELENS_FOLDER = "movielens-latest-small"
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_NO_GENRES = "(no genres listed)"


def read_movielens(
    data_dir: Path | str | None = None,
) -> tuple[list[ItemRecord], list[InteractionRecord]]:
    """Read the movies (with tags) and the ratings of ml-latest-small.

    Returns:
        Item records in file order and rating records (kind ``rating``).

    Raises:
        DatasetNotFoundError: If the folder or one of its files is missing.
        DataError: If a file is malformed.
    """
    root = resolve_data_dir(data_dir)
    items = _read_movies(require_dataset_file(root, MOVIELENS_FOLDER, "movies.csv"))
    _attach_tags(items, require_dataset_file(root, MOVIELENS_FOLDER, "tags.csv"))
    ratings = [
        InteractionRecord(
            user_id=int(record.values["userId"]),
            item_id=int(record.values["movieId"]),
            kind="rating",
            value=float(record.values["rating"]),
            time=float(record.values["timestamp"]),
        )
        for record in read_csv_records(
            require_dataset_file(root, MOVIELENS_FOLDER, "ratings.csv"), delimiter=","
        )[1]
    ]
    return list(items.values()), ratings


def _read_movies(path: Path) -> dict[int, ItemRecord]:
    items: dict[int, ItemRecord] = {}
    for record in read_csv_records(path, delimiter=",")[1]:
        title = record.values["title"].strip()
        genres = record.values["genres"].strip()
        match = _YEAR.search(title)
        fields = {}
        if genres and genres != _NO_GENRES:
            fields["genres"] = ", ".join(genres.split("|"))
        items[int(record.values["movieId"])] = ItemRecord(
            item_id=int(record.values["movieId"]),
            title=title,
            fields=fields,
            created_at=_year_start(int(match.group(1))) if match else math.nan,
        )
    return items


def _attach_tags(items: dict[int, ItemRecord], path: Path) -> None:
    for record in read_csv_records(path, delimiter=",")[1]:
        item = items.get(int(record.values["movieId"]))
        if item is not None:
            item.tags.append(TagRecord(record.values["tag"], float(record.values["timestamp"])))


def _year_start(year: int) -> float:
    return dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp()
