"""Request and response types of the recommender API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from services.recommender.catalogue import MAX_EXTERNAL_ID_LENGTH, MAX_ID, parse_id

__all__ = [
    "ItemCreate",
    "ItemPublic",
    "RecommendationList",
    "RecommendationPublic",
    "SimilarItemPublic",
]


def _check_encodable(value: str, *, name: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"`{name}` contains characters that are not valid UTF-8 (a lone surrogate); "
            "send well-formed text"
        ) from None
    # PostgreSQL text columns cannot store the NUL character.
    if "\x00" in value:
        raise ValueError(f"`{name}` contains a NUL character (U+0000); remove it")
    return value


class ItemBase(BaseModel):
    """Fields shared by item requests and responses."""

    title: str = Field(min_length=1, max_length=500, description="Item title.")
    fields: dict[str, str] = Field(
        default_factory=dict, description="Further text fields, e.g. genres or a description."
    )
    tags: list[str] = Field(default_factory=list, max_length=200, description="Free-text tags.")


class ItemCreate(ItemBase):
    """An item to add, or to update when its id is stored; it is embedded at once."""

    id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="The item's integer id (its key). Give `id`, `external_id` or both.",
    )
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EXTERNAL_ID_LENGTH,
        description="The item's string id in the caller's catalogue, e.g. sku-00123; a new "
        "one gets a free key, returned as `id`.",
    )
    created_at: float | None = Field(
        default=None,
        ge=0,
        le=253_402_300_799,
        allow_inf_nan=False,
        description="When the item appeared, Unix seconds (up to year 9999); default now.",
    )

    @field_validator("title")
    @classmethod
    def _check_title(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("`title` must contain text, got only whitespace")
        return _check_encodable(value.strip(), name="title")

    @field_validator("external_id")
    @classmethod
    def _check_external_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_encodable(value.strip(), name="external_id")

    @model_validator(mode="after")
    def _resolve_ids(self) -> ItemCreate:
        # The file importers read "42" as the key 42, so the API does the same
        # and interactions in files can name this item either way.
        if self.external_id is not None:
            parsed = parse_id(self.external_id, name="external_id")
            if isinstance(parsed, int):
                if self.id not in (None, parsed):
                    raise ValueError(
                        f"`external_id` {self.external_id!r} is the key {parsed}, which differs "
                        f"from `id` {self.id}; send one of them"
                    )
                self.id, self.external_id = parsed, None
        if self.id is None and self.external_id is None:
            raise ValueError("give the item an `id` (an integer from 1) or an `external_id`")
        return self

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        return [_check_encodable(tag, name="tags") for tag in value]

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            _check_encodable(name, name="fields")
            _check_encodable(text, name="fields")
        return value


class ItemPublic(ItemBase):
    """A stored item, and what the request changed."""

    id: int
    external_id: str | None = Field(default=None, description="The caller's string id, if any.")
    change: Literal["created", "updated", "unchanged"] = Field(
        description="`created` (status 201); `updated` when the title, text fields, tags or "
        "creation time changed, or `unchanged` (both status 200)."
    )


class RecommendationPublic(BaseModel):
    """One recommended item with its rank, score and reason."""

    rank: int
    item_id: int
    external_id: str | None = Field(default=None, description="The item's string id, if any.")
    title: str
    score: float
    reason: str = Field(description="similar, co_interacted, popular, trending or query.")
    reason_text: str = Field(
        description="The reason as a sentence, in the language of the request's "
        "Accept-Language header, else the user's console language, else English."
    )
    reason_item_id: int | None = None
    reason_tag: str | None = Field(default=None, description="The tag behind a popular reason.")


class RecommendationList(BaseModel):
    """A user's list: from a stored run, or computed now (`run_id` null)."""

    user_id: int | None = Field(description="The user's key; null for an unknown string id.")
    user_external_id: str | None = Field(default=None, description="The user's string id.")
    run_id: str | None
    items: list[RecommendationPublic]


class SimilarItemPublic(BaseModel):
    """An item close to the requested one in the embedding space."""

    item_id: int
    external_id: str | None = Field(default=None, description="The item's string id, if any.")
    title: str
    score: float
