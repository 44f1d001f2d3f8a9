"""Alembic migrations, run from code so they work from an installed package."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.settings import get_settings

__all__ = [
    "MIGRATIONS_DIR",
    "build_alembic_config",
    "ensure_database_ready",
    "find_schema_problem",
    "find_service_migrations",
    "upgrade_database",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


MIGRATIONS_ENTRY_POINT_GROUP = "diptych.migrations"


def find_service_migrations() -> list[Path]:
    """Return the migration folders that installed services declare.

    A service names a package of Alembic scripts in the `diptych.migrations`
    entry-point group. The package is located without importing it, so finding
    migrations never loads a service's models or their dependencies.

    Raises:
        ConfigurationError: If an entry point names a package that cannot be found.
    """
    from importlib.metadata import entry_points
    from importlib.util import find_spec

    from shared.errors import ConfigurationError

    folders = []
    for entry in sorted(entry_points(group=MIGRATIONS_ENTRY_POINT_GROUP), key=lambda e: e.name):
        spec = find_spec(entry.value)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigurationError(
                f"Entry point {entry.name!r} of {MIGRATIONS_ENTRY_POINT_GROUP!r} names "
                f"{entry.value!r}, which is not an importable package; reinstall Diptych "
                "with `pip install -e .`."
            )
        folders.append(Path(next(iter(spec.submodule_search_locations))))
    return folders


def build_alembic_config(
    url: str | None = None, *, extra_version_locations: Sequence[Path] = ()
) -> Config:
    """Build an Alembic config for the core's migrations plus every service's.

    Args:
        url: Database URL; ``None`` uses the configured database.
        extra_version_locations: Folders of further migration scripts, beyond
            those the installed services declare (see `find_service_migrations`).

    Returns:
        A config that `alembic.command` functions accept.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    locations = [MIGRATIONS_DIR / "versions", *find_service_migrations()]
    locations += [path for path in extra_version_locations if path not in locations]
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
    from sqlalchemy.engine import make_url

    from shared.errors import ConfigurationError

    url = url or get_settings().resolved_database_url
    if make_url(url).get_backend_name() == "sqlite":
        command.upgrade(build_alembic_config(url), "heads")
        return
    problem = find_schema_problem(url)
    if problem is not None:
        raise ConfigurationError(problem)


def find_schema_problem(url: str | None = None) -> str | None:
    """Say why the database schema is not the one this code expects.

    Returns:
        ``None`` when the database is at every migration head, else a message
        that names the revisions found and expected and the command that fixes
        it, or why the database could not be read.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import OperationalError

    from shared.storage.engine import get_engine

    url = url or get_settings().resolved_database_url
    expected = set(ScriptDirectory.from_config(build_alembic_config(url)).get_heads())
    try:
        with get_engine(url).connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except OperationalError as error:
        reason = error.orig or error
        return f"The database could not be read ({reason}); check DIPTYCH_DATABASE_URL."
    if current != expected:
        return (
            f"The database schema is at {sorted(current) or 'no revision'}, expected "
            f"{sorted(expected)}: run `diptych db upgrade` first."
        )
    return None
