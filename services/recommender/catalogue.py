"""Item and interaction records, duplicate merging, item texts, and generic file readers.

An item's text is what the encoder embeds: its title, its text fields (for
MovieLens the year and genres) and the user tags applied before a cut time, so
that an evaluation never embeds a tag written after its cut.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.recommender.behaviour import (
    INTERACTION_KINDS,
    Catalogue,
    InteractionLog,
    build_preferences,
)
from shared.errors import DataError, DatasetNotFoundError

__all__ = [
    "InteractionRecord",
    "ItemRecord",
    "TagRecord",
    "build_catalogue",
    "build_interaction_log",
    "build_item_text",
    "merge_item_records",
    "read_interaction_file",
    "read_item_file",
]

logger = logging.getLogger(__name__)

# Tags per item text; MovieLens items with many tags would otherwise outgrow the
# encoder's 256-token window.
MAX_TAGS_IN_TEXT = 20


@dataclass(frozen=True)
class TagRecord:
    """A tag applied to an item, with the Unix time it was applied (None: always known)."""

    text: str
    time: float | None = None


@dataclass
class ItemRecord:
    """One catalogue item as read from a file or the API."""

    item_id: int
    title: str
    fields: dict[str, str] = field(default_factory=dict)
    tags: list[TagRecord] = field(default_factory=list)
    created_at: float = math.nan


@dataclass(frozen=True)
class InteractionRecord:
    """One user-item event: a rating with its value, or a like, click, view or purchase."""

    user_id: int
    item_id: int
    kind: str
    value: float | None
    time: float


def merge_item_records(records: Iterable[ItemRecord]) -> list[ItemRecord]:
    """Merge records that share an item id, keeping the first order of ids.

    The first non-empty title wins, text fields fill in where missing, tags are
    united without repeats and the earliest creation time is kept.
    """
    merged: dict[int, ItemRecord] = {}
    for record in records:
        known = merged.get(record.item_id)
        if known is None:
            merged[record.item_id] = ItemRecord(
                item_id=record.item_id,
                title=record.title,
                fields=dict(record.fields),
                tags=list(dict.fromkeys(record.tags)),
                created_at=record.created_at,
            )
            continue
        known.title = known.title or record.title
        for name, value in record.fields.items():
            known.fields.setdefault(name, value)
        known.tags = list(dict.fromkeys([*known.tags, *record.tags]))
        times = [t for t in (known.created_at, record.created_at) if not math.isnan(t)]
        known.created_at = min(times) if times else math.nan
    return list(merged.values())


def build_item_text(record: ItemRecord, *, cut: float | None = None) -> str:
    """Join title, fields and the tags applied before `cut` into one line of text."""
    parts = [record.title.strip()]
    parts += [f"{name}: {value}" for name, value in record.fields.items() if value]
    tags = [tag.text for tag in record.tags if cut is None or tag.time is None or tag.time < cut]
    unique_tags = list(dict.fromkeys(tag.strip().lower() for tag in tags if tag.strip()))
    if unique_tags:
        parts.append("tags: " + ", ".join(unique_tags[:MAX_TAGS_IN_TEXT]))
    return ". ".join(part for part in parts if part)


def build_catalogue(records: Sequence[ItemRecord], *, cut: float | None = None) -> Catalogue:
    """Build a `Catalogue` from merged records, with texts as of `cut`."""
    unique = merge_item_records(records)
    return Catalogue(
        item_ids=np.array([r.item_id for r in unique], dtype=np.int64),
        titles=[r.title for r in unique],
        texts=[build_item_text(r, cut=cut) for r in unique],
        tags=[_genre_list(r) for r in unique],
        created_at=np.array([r.created_at for r in unique], dtype=np.float64),
    )


def _genre_list(record: ItemRecord) -> list[str]:
    genres = record.fields.get("genres", "")
    return [g.strip() for g in genres.split(",") if g.strip()]


def build_interaction_log(
    records: Sequence[InteractionRecord], *, like_threshold: float, dislike_threshold: float
) -> InteractionLog:
    """Turn interaction records into an `InteractionLog`, applying the preference rule."""
    values = np.array([math.nan if r.value is None else r.value for r in records], dtype=np.float32)
    return InteractionLog(
        users=np.array([r.user_id for r in records], dtype=np.int64),
        items=np.array([r.item_id for r in records], dtype=np.int64),
        values=values,
        preferences=build_preferences(
            [r.kind for r in records],
            values,
            like_threshold=like_threshold,
            dislike_threshold=dislike_threshold,
        ),
        times=np.array([r.time for r in records], dtype=np.float64),
    )


def read_item_file(path: Path | str) -> list[ItemRecord]:
    """Read items from CSV (header row) or JSON Lines.

    Columns: ``item_id`` and ``title`` are required; ``tags`` (comma- or
    pipe-separated in CSV, a list in JSON) and ``created_at`` (Unix seconds) are
    optional; every other column becomes a text field.

    Raises:
        DatasetNotFoundError: If the file does not exist.
        DataError: If the format is unsupported or a row is invalid; the message
            names the line.
    """
    rows = _read_rows(path)
    records = []
    for line, row in rows:
        try:
            records.append(_item_from_row(row))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{str(path)!r} line {line}: invalid item row: {exc}") from None
    return merge_item_records(records)


def _item_from_row(row: dict[str, Any]) -> ItemRecord:
    item_id = _parse_id(row["item_id"], name="item_id")
    title = str(row["title"]).strip()
    if not title:
        raise ValueError("`title` is empty; give every item a title")
    tags = row.get("tags") or []
    if isinstance(tags, str):
        tags = [t for t in tags.replace("|", ",").split(",") if t.strip()]
    created = row.get("created_at")
    created_at = math.nan if created in (None, "") else float(created)
    reserved = {"item_id", "title", "tags", "created_at"}
    fields = {k: str(v) for k, v in row.items() if k not in reserved and v not in (None, "")}
    return ItemRecord(
        item_id=item_id,
        title=title,
        fields=fields,
        tags=[TagRecord(str(t).strip()) for t in tags],
        created_at=created_at,
    )


def read_interaction_file(path: Path | str) -> list[InteractionRecord]:
    """Read interactions from CSV (header row) or JSON Lines.

    Columns: ``user_id``, ``item_id``, ``time`` (Unix seconds) are required;
    ``kind`` defaults to ``rating`` when a ``value`` is given, else ``click``.

    Raises:
        DatasetNotFoundError: If the file does not exist.
        DataError: If the format is unsupported or a row is invalid; the message
            names the line.
    """
    records = []
    for line, row in _read_rows(path):
        try:
            records.append(_interaction_from_row(row))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{str(path)!r} line {line}: invalid interaction row: {exc}") from None
    return records


def _interaction_from_row(row: dict[str, Any]) -> InteractionRecord:
    raw_value = row.get("value")
    value = None if raw_value in (None, "") else float(raw_value)
    kind = str(row.get("kind") or ("rating" if value is not None else "click"))
    if kind not in INTERACTION_KINDS:
        raise ValueError(f"`kind` {kind!r} is not one of {INTERACTION_KINDS}")
    if kind == "rating" and value is None:
        raise ValueError("a `rating` needs a `value`")
    return InteractionRecord(
        user_id=_parse_id(row["user_id"], name="user_id"),
        item_id=_parse_id(row["item_id"], name="item_id"),
        kind=kind,
        value=value,
        time=float(row["time"]),
    )


def _parse_id(value: Any, *, name: str) -> int:
    number = int(str(value).strip())
    if number < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}")
    return number


def _read_rows(path: Path | str) -> list[tuple[int, dict[str, Any]]]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"{str(path)!r} does not exist; pass an existing file.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            return [(number + 2, dict(row)) for number, row in enumerate(reader)]
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with path.open(encoding="utf-8-sig") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    rows.append((number, json.loads(text)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{str(path)!r} line {number}: invalid JSON: {exc}") from None
        return rows
    raise DataError(
        f"Cannot read {str(path)!r}: the suffix {suffix!r} is not supported; use .csv, "
        ".jsonl or .ndjson."
    )
