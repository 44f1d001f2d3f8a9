"""`diptych serve` and `diptych users`: run the web console and manage who may sign in."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from pipelines._console import fail, make_console
from shared.errors import DiptychError
from shared.settings import get_settings
from shared.storage import ensure_database_ready

users_app = typer.Typer(
    help="Console users: create them, list them, give programs API tokens.",
    no_args_is_help=True,
)
console = make_console()


def serve_command(
    host: str = typer.Option(None, help="Address to bind (default: DIPTYCH_CONSOLE__HOST)."),
    port: int = typer.Option(
        None, min=1, max=65535, help="Port to bind (default: DIPTYCH_CONSOLE__PORT)."
    ),
    proxy_headers: bool = typer.Option(
        False,
        help="Trust the X-Forwarded-Proto and X-Forwarded-For headers that the proxies "
        "in --forwarded-allow-ips send, so cookies get `Secure` behind HTTPS.",
    ),
    forwarded_allow_ips: str = typer.Option(
        "127.0.0.1", help="Proxy addresses whose forwarded headers are trusted."
    ),
) -> None:
    """Start the web console and the REST API with uvicorn."""
    from services.console.app import create_app
    from services.console.serving import build_server

    settings = get_settings().console
    try:
        ensure_database_ready()
        app = create_app()
    except DiptychError as exc:
        raise fail(exc) from None
    server = build_server(
        app,
        host=host or settings.host,
        port=port or settings.port,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level=get_settings().log_level.lower(),
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    server.run()


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("create")
def create_command(
    username: str = typer.Option(..., help="Name the user signs in with."),
    role: str = typer.Option(..., help="One of: agent, analyst, admin."),
    language: str = typer.Option("en", help="Console language: en or zh_CN."),
    timezone: str = typer.Option(
        "UTC", help="IANA time zone the user reads times in, e.g. Asia/Shanghai."
    ),
    password_stdin: bool = typer.Option(
        False, help="Read the password from the first line of standard input, not a prompt."
    ),
) -> None:
    """Create a console user; the password is prompted for (or read with --password-stdin)."""
    from services.console.auth import check_timezone, create_user

    try:
        # Checked before the password prompt, so a typo does not cost the typing.
        check_timezone(timezone.strip())
    except DiptychError as exc:
        raise fail(exc) from None
    password = _read_password(password_stdin)
    try:
        ensure_database_ready()
        user = create_user(username, password, role=role, language=language, timezone=timezone)
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(f"User {user.username} ({user.role}) created with id {user.id}.", markup=False)


@users_app.command("list")
def list_command() -> None:
    """List the console users."""
    from services.console import store
    from shared.storage import session_scope

    try:
        ensure_database_ready()
    except DiptychError as exc:
        raise fail(exc) from None
    table = Table("id", "user name", "role", "language", "active", "created")
    with session_scope() as session:
        for user in store.list_users(session):
            table.add_row(
                str(user.id),
                user.username,
                user.role,
                user.language,
                "yes" if user.is_active else "no",
                user.created_at.strftime("%Y-%m-%d %H:%M") if user.created_at else "",
            )
    console.print(table)


@users_app.command("token")
def token_command(
    username: str = typer.Option(..., help="User the token acts as; it gets that user's role."),
    name: str = typer.Option(..., help="What the token is for, e.g. `ticket-import`."),
) -> None:
    """Create an API token and print it once; programs send it as `Authorization: Bearer`."""
    from services.console.auth import create_api_token

    try:
        ensure_database_ready()
        token = create_api_token(username, name=name)
    except DiptychError as exc:
        raise fail(exc) from None
    print(token)
