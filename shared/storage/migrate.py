"""Alembic migrations, run from code so they work from an installed package."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.settings import get_settings

__all__ = ["MIGRATIONS_DIR", "build_alembic_config", "upgrade_database"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def build_alembic_config(
    url: str | None = None, *, extra_version_locations: Sequence[Path] = ()
) -> Config:
    """Build an Alembic config for the core's migrations plus any service's.

    Args:
        url: Database URL; ``None`` uses the configured database.
        extra_version_locations: Folders of further migration scripts (services
            keep theirs beside their tables, on their own Alembic branch).

    Returns:
        A config that `alembic.command` functions accept.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    locations = [MIGRATIONS_DIR / "versions", *extra_version_locations]
    config.set_main_option("version_locations", " ".join(str(path) for path in locations))
    config.set_main_option("path_separator", "space")
    config.attributes["database_url"] = url or get_settings().resolved_database_url
    return config


def upgrade_database(
    url: str | None = None,
    *,
    revision: str = "heads",
    extra_version_locations: Sequence[Path] = (),
) -> None:
    """Apply migrations up to `revision` (default: every branch's head)."""
    config = build_alembic_config(url, extra_version_locations=extra_version_locations)
    command.upgrade(config, revision)
    logger.info("database upgraded revision=%s", revision)
