"""Request and response types of the support API."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "MAX_ROW_ID",
    "MAX_TICKET_CHARS",
    "ArticleBase",
    "ArticleCreate",
    "ArticlePublic",
    "DraftPublic",
    "FeedbackCreate",
    "FeedbackPublic",
    "PassagePublic",
    "SearchHitPublic",
    "TicketBase",
    "TicketCreate",
    "TicketDetail",
    "TicketPublic",
    "TicketsCreate",
]

# Row ids are 32-bit INTEGER columns on PostgreSQL; a larger id from a client would
# make the database raise instead of finding nothing.
MAX_ROW_ID = 2**31 - 1

# A ticket is a customer message, not a document: 20,000 characters is about ten
# printed pages, far above any real message and small enough to clean quickly.
MAX_TICKET_CHARS = 20_000


class TicketBase(BaseModel):
    """Fields a customer request carries."""

    text: str = Field(
        description="The customer's message: plain text or HTML, any language.",
        max_length=MAX_TICKET_CHARS,
    )
    subject: str = Field(default="", max_length=500, description="Subject line, if any.")
    external_id: str | None = Field(
        default=None,
        max_length=200,
        description="Your id for the ticket; submitting the same id twice returns the first.",
    )


class TicketCreate(TicketBase):
    """A ticket submitted through the API, the CLI or a file import."""

    channel: Literal["api", "cli", "import", "console", "email"] = Field(
        default="api", description="Where the ticket came from."
    )


class TicketsCreate(BaseModel):
    """Several tickets in one request; each is accepted or refused on its own."""

    tickets: list[TicketCreate] = Field(min_length=1, max_length=1000)


class TicketPublic(BaseModel):
    """A ticket as agents and programs see it: customer text masked."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    external_id: str | None
    channel: str
    subject: str
    text: str = Field(description="The cleaned message with PII replaced by placeholders.")
    pii_kinds: list[str]
    status: str
    intent: str | None
    confidence: float | None
    is_out_of_scope: bool
    needs_human: bool
    created_at: dt.datetime | None = None


class PassagePublic(BaseModel):
    """A retrieved source of a ticket's draft."""

    model_config = ConfigDict(from_attributes=True)

    rank: int
    kind: str
    source_id: int
    score: float
    intent: str | None
    text: str


class DraftPublic(BaseModel):
    """A drafted reply."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: int
    revision: int
    text: str
    kind: str = Field(
        description="`generated` by the drafter, `fallback` to the best passage, or "
        "`no_answer` when there was no passage to fall back on (empty `text`; the ticket "
        "goes to the human queue)."
    )
    model: str
    citations: list[int] = Field(description="Ranks of the passages the draft draws on.")
    grounding: float | None
    fallback_reason: str | None
    n_new_tokens: int
    finished: bool
    seconds: float


class TicketDetail(TicketPublic):
    """A ticket with its retrieved passages and latest draft."""

    passages: list[PassagePublic] = Field(default_factory=list)
    draft: DraftPublic | None = None


class FeedbackCreate(BaseModel):
    """An agent's verdict on a draft; the signed-in user is recorded as the agent."""

    action: Literal["accept", "edit", "reject"]
    final_text: str | None = Field(
        default=None,
        max_length=MAX_TICKET_CHARS,
        description="The reply as sent; required for `edit`.",
    )
    reason: str | None = Field(
        default=None, max_length=2000, description="Why the draft was rejected; required there."
    )
    corrected_intent: str | None = Field(
        default=None, max_length=200, description="The right intent when triage got it wrong."
    )

    @model_validator(mode="after")
    def _check_action_fields(self) -> FeedbackCreate:
        if self.action == "edit" and not (self.final_text or "").strip():
            raise ValueError("`final_text` is required when `action` is 'edit': send the reply.")
        if self.action == "reject" and not (self.reason or "").strip():
            raise ValueError("`reason` is required when `action` is 'reject': say what was wrong.")
        return self


class FeedbackPublic(BaseModel):
    """Stored feedback."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    draft_id: int
    ticket_id: int
    action: str
    final_text: str | None
    reason: str | None
    corrected_intent: str | None
    agent: str = Field(description="User name of the agent who gave the feedback.")


class ArticleBase(BaseModel):
    """Fields of a knowledge-base article."""

    body: str = Field(min_length=1, max_length=50_000, description="Answer text; may hold slots.")
    title: str = Field(default="", max_length=500)
    intent: str | None = Field(default=None, max_length=200, description="Intent it answers.")


class ArticleCreate(ArticleBase):
    """An article added through the API."""

    @field_validator("body")
    @classmethod
    def _check_body(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("`body` must contain text, got only whitespace")
        return value


class ArticlePublic(ArticleBase):
    """A stored article."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    slots: list[str]


class SearchHitPublic(BaseModel):
    """One knowledge-base search result."""

    article: ArticlePublic
    score: float
