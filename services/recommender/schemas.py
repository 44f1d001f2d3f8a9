"""Request and response types of the recommender API."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

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
    return value


class ItemBase(BaseModel):
    """Fields shared by item requests and responses."""

    title: str = Field(min_length=1, max_length=500, description="Item title.")
    fields: dict[str, str] = Field(
        default_factory=dict, description="Further text fields, e.g. genres or a description."
    )
    tags: list[str] = Field(default_factory=list, max_length=200, description="Free-text tags.")


class ItemCreate(ItemBase):
    """A new catalogue item; it is embedded and added to the index at once."""

    id: int = Field(ge=0, le=2**31 - 1, description="The item's id in the caller's catalogue.")
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
    """A stored item."""

    id: int


class RecommendationPublic(BaseModel):
    """One recommended item with its rank, score and reason."""

    rank: int
    item_id: int
    title: str
    score: float
    reason: str = Field(description="similar, co_interacted, popular, trending or query.")
    reason_text: str = Field(description="The reason in English.")
    reason_item_id: int | None = None
    reason_tag: str | None = Field(default=None, description="The tag behind a popular reason.")


class RecommendationList(BaseModel):
    """A user's list: from a stored run, or computed now (`run_id` null)."""

    user_id: int
    run_id: str | None
    items: list[RecommendationPublic]


class SimilarItemPublic(BaseModel):
    """An item close to the requested one in the embedding space."""

    item_id: int
    title: str
    score: float
