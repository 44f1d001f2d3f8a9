"""`diptych db`: database migrations."""

from __future__ import annotations

import time

import typer

from pipelines._console import make_console
from shared.settings import get_settings
from shared.storage import find_schema_problem, upgrade_database

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


@db_app.command("check")
def check_command(
    wait: float = typer.Option(
        0.0,
        "--wait",
        min=0.0,
        help="Seconds to keep checking until the schema is current (for a container that "
        "starts beside the migration job); 0 checks once.",
    ),
    interval: float = typer.Option(
        5.0, "--interval", min=0.1, help="Seconds between two checks while waiting."
    ),
) -> None:
    """Exit 0 when the database is at every migration head, else 1 with the reason."""
    deadline = time.monotonic() + wait
    while (problem := find_schema_problem()) is not None and time.monotonic() < deadline:
        console.print(f"waiting: {problem}", markup=False)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    if problem is not None:
        console.print(problem, markup=False)
        raise typer.Exit(code=1)
    console.print(f"Database at {_safe_url()} is current.", markup=False)


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().resolved_database_url).render_as_string(hide_password=True)
