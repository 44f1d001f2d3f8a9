"""Tables of the sentiment service: items, entity mentions, buckets, alerts, silences.

Exactly-once storage rests on unique constraints: an item's `external_id` is
unique, and bucket counts grow only for items that the same transaction
inserted, so a redelivered stream entry changes nothing.

Times are UTC. `published_at` and the alert times `started_at`, `fired_at`
and `resolved_at` are event times (the items' published times); the other
timestamps are wall-clock times.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.storage.base import Base

__all__ = [
    "ALERT_STATES",
    "AlertState",
    "Bucket",
    "Mention",
    "NotificationLogEntry",
    "RuleState",
    "SentimentAlert",
    "SentimentItem",
    "Silence",
]

AlertState = Literal["pending", "firing", "resolved", "inactive"]
ALERT_STATES: tuple[AlertState, ...] = ("pending", "firing", "resolved", "inactive")


def _now_column() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class SentimentItem(Base):
    """A scored news item or post."""

    __tablename__ = "sentiment_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(64), default="api", index=True)
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(16), index=True)
    score: Mapped[float] = mapped_column(Float)
    positive: Mapped[float] = mapped_column(Float)
    neutral: Mapped[float] = mapped_column(Float)
    negative: Mapped[float] = mapped_column(Float)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    model: Mapped[str] = mapped_column(String(250), default="")
    created_at: Mapped[dt.datetime] = _now_column()

    mentions: Mapped[list[Mention]] = relationship(
        back_populates="item", order_by="Mention.start", cascade="all, delete-orphan"
    )


class Mention(Base):
    """An entity named in an item, with its offsets into the item's text.

    `label` and `score` are the entity's: the item's own, or those of the
    clause that names the entity when the item names several entities in
    different clauses. Given entities (sent with the item, not found in the
    text) have ``start = end = -1``.
    """

    __tablename__ = "sentiment_mentions"
    __table_args__ = (UniqueConstraint("item_id", "entity", "start", name="uq_sentiment_mentions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("sentiment_items.id", ondelete="CASCADE"), index=True
    )
    entity: Mapped[str] = mapped_column(String(64), index=True)
    surface: Mapped[str] = mapped_column(String(300))
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)

    item: Mapped[SentimentItem] = relationship(back_populates="mentions")


class Bucket(Base):
    """Counts of one entity's mentions in one time bucket (UTC edges)."""

    __tablename__ = "sentiment_buckets"
    __table_args__ = (
        UniqueConstraint("entity", "granularity", "bucket_start", name="uq_sentiment_buckets"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(64))
    granularity: Mapped[str] = mapped_column(String(8))
    bucket_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    n_positive: Mapped[int] = mapped_column(Integer, default=0)
    n_neutral: Mapped[int] = mapped_column(Integer, default=0)
    n_negative: Mapped[int] = mapped_column(Integer, default=0)
    score_sum: Mapped[float] = mapped_column(Float, default=0.0)


class SentimentAlert(Base):
    """One episode of a rule's condition for one entity: pending, firing, then resolved.

    The fingerprint identifies the rule and entity; each new episode gets a
    new row. A pending episode whose condition clears becomes ``inactive``
    without ever notifying.
    """

    __tablename__ = "sentiment_alerts"
    __table_args__ = (
        UniqueConstraint("fingerprint", "started_at", name="uq_sentiment_alerts_episode"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    rule: Mapped[str] = mapped_column(String(100))
    entity: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    fired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_true_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    consecutive: Mapped[int] = mapped_column(Integer, default=1)
    value: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    observed_firing_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    observed_resolved_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    created_at: Mapped[dt.datetime] = _now_column()


class RuleState(Base):
    """How far (in published time) a rule has been evaluated."""

    __tablename__ = "sentiment_rule_state"

    rule: Mapped[str] = mapped_column(String(100), primary_key=True)
    evaluated_until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class NotificationLogEntry(Base):
    """One notification of an entity's alert group: which alerts it reported.

    The entry and the outbox messages it caused commit together, so after a
    restart the log shows exactly what was already sent or queued.
    """

    __tablename__ = "sentiment_notification_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_key: Mapped[str] = mapped_column(String(64), index=True)
    firing_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    resolved_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Silence(Base):
    """Mutes notifications of alerts whose labels match every matcher, until `ends_at`."""

    __tablename__ = "sentiment_silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    matchers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = _now_column()
