"""Item and interaction records, duplicate merging, item texts, and generic file readers.

An item's text is what the encoder embeds: its title, its text fields (for
MovieLens the year and genres) and the user tags applied before a cut time, so
that an evaluation never embeds a tag written after its cut.

Ids. Items and users are stored under integer keys from 1 to `MAX_ID`. A
caller's id that is such an integer is the key itself. Any other id (for
example ``sku-00123``, a barcode longer than 32 bits, or ``007`` with its
leading zeros) is kept as the record's external id, and the store assigns it a
free key when it first reads it.

Duplicates. Records with the same id are merged, and later ones update earlier
ones. A non-empty title replaces the title, text fields are overwritten field
by field, tags are united and the earliest creation time is kept.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
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
    "MAX_EXTERNAL_ID_LENGTH",
    "MAX_ID",
    "InteractionRecord",
    "ItemRecord",
    "TagRecord",
    "build_catalogue",
    "build_interaction_log",
    "build_item_text",
    "merge_item_records",
    "parse_id",
    "read_interaction_file",
    "read_item_file",
    "update_item_record",
]

logger = logging.getLogger(__name__)

# Item and user keys are INTEGER columns, 32-bit in PostgreSQL and SQLite alike.
MAX_ID = 2**31 - 1
# Length of the `external_id` columns.
MAX_EXTERNAL_ID_LENGTH = 200
_INTEGER_ID = re.compile(r"[1-9][0-9]*")
_SIGNED = re.compile(r"[+-][0-9]+")
_ZEROS = re.compile(r"0+")
_DECIMAL = re.compile(r"[+-]?[0-9]+\.[0-9]*")

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
    """One catalogue item as read from a file or the API, or as stored.

    Attributes:
        item_id: The item's key; None for an item named by `external_id` whose key
            the store has not assigned yet.
        external_id: The caller's id when it is not an integer key, else None.
    """

    item_id: int | None
    title: str
    fields: dict[str, str] = field(default_factory=dict)
    tags: list[TagRecord] = field(default_factory=list)
    created_at: float = math.nan
    external_id: str | None = None

    @property
    def caller_id(self) -> int | str:
        """The id the caller uses for this item: its external id, else its key."""
        if self.external_id is not None:
            return self.external_id
        if self.item_id is None:
            raise RuntimeError("An item record needs an `item_id` or an `external_id`.")
        return self.item_id


@dataclass(frozen=True)
class InteractionRecord:
    """One user-item event: a rating with its value, or a like, click, view or purchase.

    A user or item named by a string id has its key None and the string in
    `user_external_id` or `item_external_id` until the store resolves it.
    """

    user_id: int | None
    item_id: int | None
    kind: str
    value: float | None
    time: float
    user_external_id: str | None = None
    item_external_id: str | None = None


def update_item_record(known: ItemRecord, update: ItemRecord) -> ItemRecord:
    """Return `known` updated by a later record of the same item (see the module docstring)."""
    fields = dict(known.fields)
    fields.update({name: value for name, value in update.fields.items() if value})
    times = [t for t in (known.created_at, update.created_at) if not math.isnan(t)]
    return ItemRecord(
        item_id=known.item_id if known.item_id is not None else update.item_id,
        title=update.title.strip() or known.title,
        fields=fields,
        tags=list(dict.fromkeys([*known.tags, *update.tags])),
        created_at=min(times) if times else math.nan,
        external_id=known.external_id if known.external_id is not None else update.external_id,
    )


def merge_item_records(records: Iterable[ItemRecord]) -> list[ItemRecord]:
    """Merge records that share an id, keeping the first order of ids.

    Records are matched by external id when they have one, else by key; later
    records update earlier ones as `update_item_record` describes.
    """
    merged: dict[int | str, ItemRecord] = {}
    for record in records:
        key = record.caller_id
        known = merged.get(key)
        if known is None:
            merged[key] = update_item_record(
                ItemRecord(item_id=record.item_id, title="", external_id=record.external_id),
                record,
            )
        else:
            merged[key] = update_item_record(known, record)
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
    """Build a `Catalogue` from merged records, with texts as of `cut`.

    Raises:
        ValueError: If a record has no key yet (a string id never imported).
    """
    unique = merge_item_records(records)
    return Catalogue(
        item_ids=np.array([_require_key(r.item_id, r.external_id) for r in unique], dtype=np.int64),
        titles=[r.title for r in unique],
        texts=[build_item_text(r, cut=cut) for r in unique],
        tags=[_genre_list(r) for r in unique],
        created_at=np.array([r.created_at for r in unique], dtype=np.float64),
    )


def _require_key(key: int | None, external_id: str | None) -> int:
    if key is None:
        raise ValueError(
            f"The id {external_id!r} has no integer key yet; import the records with "
            "`store.import_items` and `store.import_interactions`, which assign keys."
        )
    return key


def _genre_list(record: ItemRecord) -> list[str]:
    genres = record.fields.get("genres", "")
    return [g.strip() for g in genres.split(",") if g.strip()]


def build_interaction_log(
    records: Sequence[InteractionRecord], *, like_threshold: float, dislike_threshold: float
) -> InteractionLog:
    """Turn interaction records into an `InteractionLog`, applying the preference rule.

    Raises:
        ValueError: If a record names a user or item by a string id without a key.
    """
    values = np.array([math.nan if r.value is None else r.value for r in records], dtype=np.float32)
    return InteractionLog(
        users=np.array(
            [_require_key(r.user_id, r.user_external_id) for r in records], dtype=np.int64
        ),
        items=np.array(
            [_require_key(r.item_id, r.item_external_id) for r in records], dtype=np.int64
        ),
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
    optional; every other column becomes a text field. An ``item_id`` is an
    integer from 1 to `MAX_ID` or any other text (see the module docstring).
    Rows with the same id are merged, later rows updating earlier ones.

    Raises:
        DatasetNotFoundError: If the file does not exist.
        DataError: If the format is unsupported, a required column is missing, or a
            row is invalid; the message names the line.
    """
    rows = _read_rows(path, required=("item_id", "title"))
    records = []
    for line, row in rows:
        try:
            records.append(_item_from_row(row))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{str(path)!r} line {line}: invalid item row: {exc}") from None
    return merge_item_records(records)


def _item_from_row(row: dict[str, Any]) -> ItemRecord:
    item_id = parse_id(_required(row, "item_id"), name="item_id")
    title = str(_required(row, "title")).strip()
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
        item_id=item_id if isinstance(item_id, int) else None,
        external_id=item_id if isinstance(item_id, str) else None,
        title=title,
        fields=fields,
        tags=[TagRecord(str(t).strip()) for t in tags],
        created_at=created_at,
    )


def read_interaction_file(path: Path | str) -> list[InteractionRecord]:
    """Read interactions from CSV (header row) or JSON Lines.

    Columns: ``user_id``, ``item_id``, ``time`` (Unix seconds) are required;
    ``kind`` defaults to ``rating`` when a ``value`` is given, else ``click``.
    User and item ids follow the rule of `read_item_file`.

    Raises:
        DatasetNotFoundError: If the file does not exist.
        DataError: If the format is unsupported, a required column is missing, or a
            row is invalid; the message names the line.
    """
    records = []
    for line, row in _read_rows(path, required=("user_id", "item_id", "time")):
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
    user_id = parse_id(_required(row, "user_id"), name="user_id")
    item_id = parse_id(_required(row, "item_id"), name="item_id")
    return InteractionRecord(
        user_id=user_id if isinstance(user_id, int) else None,
        item_id=item_id if isinstance(item_id, int) else None,
        kind=kind,
        value=value,
        time=float(_required(row, "time")),
        user_external_id=user_id if isinstance(user_id, str) else None,
        item_external_id=item_id if isinstance(item_id, str) else None,
    )


def _required(row: dict[str, Any], name: str) -> Any:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"`{name}` is missing or empty; give every row a `{name}`")
    return value


def parse_id(value: Any, *, name: str) -> int | str:
    """Return a caller's id as an integer key, or as a string id to map to a key.

    ``42`` and ``"42"`` give the key 42. Other text gives a string id, stripped:
    ``"sku-00123"``, ``"007"`` (leading zeros are kept), ``"4006381333931"`` (above
    `MAX_ID`).

    Raises:
        ValueError: If `value` is empty, zero, negative, a decimal number, a boolean,
            text with a NUL character, or text longer than `MAX_EXTERNAL_ID_LENGTH`
            characters; the message names `name`.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"`{name}` must be an integer or a string, got {value!r}; write ids as "
            "integers from 1 or as text such as 'sku-00123'"
        )
    text = str(value).strip()
    if not text:
        raise ValueError(f"`{name}` is empty; give every row an id")
    if _INTEGER_ID.fullmatch(text) and int(text) <= MAX_ID:
        return int(text)
    if _DECIMAL.fullmatch(text):
        raise ValueError(
            f"`{name}` {value!r} is a decimal number; write integer ids without a "
            "fraction, or use text such as 'sku-00123'"
        )
    if _SIGNED.fullmatch(text) or _ZEROS.fullmatch(text):
        raise ValueError(
            f"`{name}` must be an integer from 1 to {MAX_ID} or a string id, got {value!r}"
        )
    if "\x00" in text:
        raise ValueError(f"`{name}` {text!r} contains a NUL character (U+0000); remove it")
    if len(text) > MAX_EXTERNAL_ID_LENGTH:
        raise ValueError(
            f"`{name}` {text[:40]!r}... has {len(text)} characters; string ids may have at "
            f"most {MAX_EXTERNAL_ID_LENGTH}"
        )
    return text


def _read_rows(path: Path | str, *, required: Sequence[str]) -> list[tuple[int, dict[str, Any]]]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"{str(path)!r} does not exist; pass an existing file.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [(number + 2, dict(row)) for number, row in enumerate(reader)]
            columns = [name for name in reader.fieldnames or [] if name]
    elif suffix in (".jsonl", ".ndjson"):
        rows = _read_json_lines(path)
        columns = list(dict.fromkeys(name for _, row in rows for name in row))
    else:
        raise DataError(
            f"Cannot read {str(path)!r}: the suffix {suffix!r} is not supported; use .csv, "
            ".jsonl or .ndjson."
        )
    _check_columns(path, columns, required=required, is_empty=not rows)
    return rows


def _read_json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{str(path)!r} line {number}: invalid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise DataError(
                    f"{str(path)!r} line {number}: expected a JSON object with named "
                    f"fields, got {type(row).__name__}."
                )
            rows.append((number, row))
    return rows


def _check_columns(
    path: Path, columns: Sequence[str], *, required: Sequence[str], is_empty: bool
) -> None:
    # An empty JSON Lines file has no columns to check, so it imports nothing.
    if is_empty and path.suffix.lower() != ".csv":
        return
    missing = [name for name in required if name not in columns]
    if missing:
        raise DataError(
            f"{str(path)!r} has no `{missing[0]}` column (its columns: "
            f"{', '.join(repr(c) for c in columns) or 'none'}); add a `{missing[0]}` column, "
            f"or rename the column that contains it. Required columns: {', '.join(required)}."
        )
