"""Tables of the recommender: items, users, interactions, batch runs and their results.

A batch run writes each user's list once: a result row is unique per (run,
user, rank) and per (run, user, item), so a redelivered task that recomputes a
finished user inserts nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.storage.base import Base

__all__ = ["Interaction", "Item", "RecUser", "RecommendationRow", "RecommendationRun"]


class Item(Base):
    """A catalogue item: `id` is the caller's integer id, or a key assigned to `external_id`."""

    __tablename__ = "reco_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    title: Mapped[str] = mapped_column(String(500))
    fields: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    item_created_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class RecUser(Base):
    """A user: `id` is the caller's integer id, or a key assigned to `external_id`."""

    __tablename__ = "reco_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Interaction(Base):
    """One event between a user and an item: a rating (with value), like, click, view..."""

    __tablename__ = "reco_interactions"
    __table_args__ = (Index("ix_reco_interactions_user_time", "user_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("reco_users.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(
        ForeignKey("reco_items.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    occurred_at: Mapped[float] = mapped_column(Float)


class RecommendationRun(Base):
    """A batch job: its id, list length, state and counts."""

    __tablename__ = "reco_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(100), unique=True)
    top_n: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="running")
    user_count: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RecommendationRow(Base):
    """One recommended item of one user in one run, with the reason shown for it."""

    __tablename__ = "reco_recommendations"
    __table_args__ = (
        UniqueConstraint("run_id", "user_id", "rank", name="uq_reco_recommendations_rank"),
        UniqueConstraint("run_id", "user_id", "item_id", name="uq_reco_recommendations_item"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(
        ForeignKey("reco_runs.run_id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(Integer)
    rank: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(32))
    reason_item_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason_tag: Mapped[str | None] = mapped_column(Text, nullable=True)
