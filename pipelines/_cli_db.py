"""`diptych db`: database migrations."""

from __future__ import annotations

import typer

from pipelines._console import make_console
from shared.settings import get_settings
from shared.storage import upgrade_database

db_app = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)
console = make_console()


@db_app.command("upgrade")
def upgrade_command(
    revision: str = typer.Argument(
        "heads", help="Target revision; `heads` applies every migration."
    ),
) -> None:
    """Apply database migrations up to REVISION."""
    upgrade_database(revision=revision)
    console.print(f"Database at {_safe_url()} is migrated to {revision}.", markup=False)


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().resolved_database_url).render_as_string(hide_password=True)
