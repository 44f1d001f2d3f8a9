"""Alembic migrations, run from code so they work from an installed package."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.settings import get_settings

__all__ = ["MIGRATIONS_DIR", "build_alembic_config", "ensure_database_ready", "upgrade_database"]

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


def ensure_database_ready(url: str | None = None) -> None:
    """Make sure the schema is current before a command uses the database.

    The embedded SQLite database is migrated on the spot, because it belongs to
    this process's home folder. Any other database is only checked: migrating
    a shared production database is the operator's decision.

    Raises:
        ConfigurationError: If a non-SQLite database is behind the migrations.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url

    from shared.errors import ConfigurationError
    from shared.storage.engine import get_engine

    url = url or get_settings().resolved_database_url
    if make_url(url).get_backend_name() == "sqlite":
        command.upgrade(build_alembic_config(url), "heads")
        return
    expected = set(ScriptDirectory.from_config(build_alembic_config(url)).get_heads())
    with get_engine(url).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current != expected:
        raise ConfigurationError(
            f"The database schema is at {sorted(current) or 'no revision'}, expected "
            f"{sorted(expected)}: run `diptych db upgrade` first."
        )
