"""Request and response types of the sentiment API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "AlertPublic",
    "BatchAccepted",
    "BatchItemError",
    "BucketPublic",
    "EntityRankPublic",
    "ItemAccepted",
    "ItemCreate",
    "ItemPublic",
    "ItemsCreate",
    "MentionPublic",
    "SilenceCreate",
    "SilenceMatcher",
    "SilencePublic",
]

# Items longer than this are refused: news items and posts are far shorter,
# and the classifier reads only its first max_length tokens anyway.
MAX_TEXT_CHARS = 20_000
MAX_BATCH_ITEMS = 1000


class ItemCreate(BaseModel):
    """One news item or post to score."""

    model_config = ConfigDict(str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=200, description="The item's id at its source.")
    source: str = Field(default="api", min_length=1, max_length=64, description="Feed name.")
    published_at: dt.datetime = Field(
        description="Publication time, ISO 8601; a time without a zone is read as UTC."
    )
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The item's text.")
    entities: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Entity symbols the sender already knows the item is about.",
    )

    @field_validator("text", "id", "source")
    @classmethod
    def _reject_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters (U+0000); remove them")
        return value

    @field_validator("published_at")
    @classmethod
    def _to_utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    @field_validator("entities")
    @classmethod
    def _clean_entities(cls, value: list[str]) -> list[str]:
        cleaned = [entity.strip().upper() for entity in value if entity.strip()]
        for entity in cleaned:
            if len(entity) > 64:
                raise ValueError(f"entity {entity[:80]!r} is longer than 64 characters")
        return list(dict.fromkeys(cleaned))


class ItemsCreate(BaseModel):
    """A batch of items."""

    items: list[ItemCreate] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class ItemAccepted(BaseModel):
    """The outcome of an item request.

    `queued` is true when the items went onto the stream for the workers, false
    when they were scored and stored during the request. `duplicates` counts
    repeats within the request, plus items already stored when not queued.
    """

    accepted: int
    duplicates: int
    queued: bool
    ids: list[str]


class BatchItemError(BaseModel):
    """An item of a batch that was refused, by its position."""

    index: int
    id: str | None
    error: str


class BatchAccepted(ItemAccepted):
    """A batch: the accepted items and the refused ones."""

    errors: list[BatchItemError]


class MentionPublic(BaseModel):
    """An entity named in an item."""

    model_config = ConfigDict(from_attributes=True)

    entity: str
    surface: str
    start: int
    end: int
    kind: str
    label: str
    score: float


class ItemPublic(BaseModel):
    """A stored, scored item."""

    model_config = ConfigDict(from_attributes=True)

    external_id: str
    source: str
    published_at: dt.datetime
    text: str
    label: str
    score: float
    positive: float
    neutral: float
    negative: float
    mentions: list[MentionPublic]


class BucketPublic(BaseModel):
    """One bucket of an entity's series."""

    start: dt.datetime
    positive: int
    neutral: int
    negative: int
    volume: int
    mean_score: float
    negative_share: float


class EntityRankPublic(BaseModel):
    """An entity ranked by how far its latest negative share is above its baseline."""

    entity: str
    name: str
    surge: float | None
    negative_share: float
    baseline_mean: float | None
    baseline_spread: float | None
    volume: int
    bucket_start: dt.datetime
    firing: int


class AlertPublic(BaseModel):
    """An alert episode."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    fingerprint: str
    rule: str
    entity: str
    severity: str
    state: str
    started_at: dt.datetime
    fired_at: dt.datetime | None
    resolved_at: dt.datetime | None
    value: float
    details: dict[str, Any]
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None


class SilenceMatcher(BaseModel):
    """Matches an alert label (`rule`, `entity` or `severity`) by value or regular expression."""

    name: str = Field(pattern=r"^(rule|entity|severity)$")
    value: str = Field(min_length=1, max_length=200)
    is_regex: bool = False


class SilenceCreate(BaseModel):
    """A silence: its matchers and how long it lasts."""

    matchers: list[SilenceMatcher] = Field(min_length=1, max_length=10)
    duration_s: float = Field(gt=0, le=90 * 86_400, description="Seconds from now.")
    comment: str = Field(default="", max_length=1000)


class SilencePublic(BaseModel):
    """A stored silence."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    matchers: list[dict[str, Any]]
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_by: str
    comment: str
