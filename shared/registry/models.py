"""The `model_versions` table: one row per registered model artefact."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from shared.storage.base import Base

__all__ = ["STAGES", "ModelVersion", "Stage"]

Stage = Literal["candidate", "production", "archived"]
STAGES: tuple[Stage, ...] = ("candidate", "production", "archived")


class ModelVersion(Base):
    """A registered model version and where its files live."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(64))
    base_model: Mapped[str] = mapped_column(String(500))
    method: Mapped[str] = mapped_column(String(64))
    label_map: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    data_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    checksums: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    stage: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    path: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    stage_changed_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )

    @property
    def reference(self) -> str:
        """The version's name as the CLI writes it, e.g. ``support-intent@3``."""
        return f"{self.name}@{self.version}"
