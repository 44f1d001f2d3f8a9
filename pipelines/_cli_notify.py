"""`diptych notify`: the e-mail outbox from the terminal."""

from __future__ import annotations

import typer
from rich.table import Table

from pipelines._console import fail, make_console
from shared.errors import DiptychError
from shared.storage import ensure_database_ready

notify_app = typer.Typer(
    help="E-mail outbox: deliver due messages, retry failed ones.", no_args_is_help=True
)
console = make_console()


@notify_app.command("deliver")
def deliver_command() -> None:
    """Send every outbox message that is due now."""
    from shared.notify import deliver_due_messages

    try:
        ensure_database_ready()
        report = deliver_due_messages()
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(
        f"Sent {report.sent}, to retry {report.retried}, given up {report.failed}.", markup=False
    )


@notify_app.command("retry")
def retry_command() -> None:
    """Put failed messages back in the queue with a fresh attempt count."""
    from shared.notify import retry_failed_messages

    try:
        ensure_database_ready()
        count = retry_failed_messages()
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(f"Requeued {count} failed messages.", markup=False)


@notify_app.command("status")
def status_command() -> None:
    """Count outbox messages per status."""
    from shared.notify import count_outbox
    from shared.storage import session_scope

    try:
        ensure_database_ready()
        with session_scope() as session:
            counts = count_outbox(session)
    except DiptychError as exc:
        raise fail(exc) from None
    table = Table("status", "messages")
    for status, count in counts.items():
        table.add_row(status, str(count))
    console.print(table)
