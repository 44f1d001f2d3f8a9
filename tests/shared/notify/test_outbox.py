"""The e-mail outbox against a real SMTP server on loopback: retries, backoff, exactly once."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select

from shared.notify import (
    OutboxMessage,
    compute_backoff_s,
    count_outbox,
    deliver_due_messages,
    enqueue_email,
    retry_failed_messages,
)
from shared.settings import NotifySettings, get_settings
from shared.storage import session_scope
from tests._smtp import SmtpServer


def _message(to: str, subject: str = "测试 subject") -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Monitor <monitor@example.com>"
    message["To"] = to
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content("body")
    return message


def test_backoff_doubles_and_caps() -> None:
    """The wait doubles per failed attempt up to the cap."""
    settings = NotifySettings(backoff_base_s=10, backoff_max_s=60)
    assert [compute_backoff_s(n, settings) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]


def test_enqueue_is_idempotent(database_url: str) -> None:
    """The same dedup key is stored once."""
    with session_scope() as session:
        first = enqueue_email(session, dedup_key="k1", message=_message("a@example.com"))
        second = enqueue_email(session, dedup_key="k1", message=_message("a@example.com"))
    assert first is not None
    assert second is None
    with session_scope() as session:
        assert count_outbox(session)["pending"] == 1


def test_enqueue_rejects_two_recipients(database_url: str) -> None:
    """One message per recipient: two To addresses are refused with the fix."""
    with session_scope() as session, pytest.raises(ValueError, match="one message per recipient"):
        enqueue_email(session, dedup_key="k", message=_message("a@example.com, b@example.com"))


def test_outbox_survives_server_outage(database_url: str, smtp_server: SmtpServer) -> None:
    """Messages queued while the server is down arrive exactly once after it is back."""
    # Given three queued messages and a stopped server
    with session_scope() as session:
        for index in range(3):
            enqueue_email(session, dedup_key=f"k{index}", message=_message(f"r{index}@example.com"))
    smtp_server.stop()
    now = dt.datetime.now(dt.UTC)

    # When delivery runs during the outage, then after the backoff with the server back
    down = deliver_due_messages(now=now)
    early = deliver_due_messages(now=now + dt.timedelta(seconds=1))
    smtp_server.start()
    later = now + dt.timedelta(seconds=get_settings().notify.backoff_base_s + 1)
    up = deliver_due_messages(now=later)
    again = deliver_due_messages(now=later + dt.timedelta(hours=2))

    # Then nothing was lost or sent twice
    assert (down.sent, down.retried) == (0, 3)
    assert early.sent + early.retried == 0
    assert up.sent == 3
    assert again.sent == 0
    recipients = sorted(rcpt for _f, tos, _d in smtp_server.handler.messages for rcpt in tos)
    assert recipients == ["r0@example.com", "r1@example.com", "r2@example.com"]
    with session_scope() as session:
        rows = list(session.scalars(select(OutboxMessage)))
    assert {row.status for row in rows} == {"sent"}
    assert {row.attempts for row in rows} == {2}


def test_gives_up_after_max_attempts_and_retries(
    database_url: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After max_attempts a message is failed; `retry` queues it again and it is sent."""
    monkeypatch.setenv("DIPTYCH_NOTIFY__MAX_ATTEMPTS", "2")
    from shared.settings import reset_settings

    reset_settings()
    with session_scope() as session:
        enqueue_email(session, dedup_key="k", message=_message("r@example.com"))
    smtp_server.stop()
    now = dt.datetime.now(dt.UTC)
    deliver_due_messages(now=now)
    last = deliver_due_messages(now=now + dt.timedelta(hours=1))
    assert last.failed == 1
    smtp_server.start()
    assert deliver_due_messages(now=now + dt.timedelta(hours=2)).sent == 0
    assert retry_failed_messages(now=now + dt.timedelta(hours=2)) == 1
    assert deliver_due_messages(now=now + dt.timedelta(hours=2)).sent == 1


def test_stale_sending_message_is_sent_again(database_url: str, smtp_server: SmtpServer) -> None:
    """A message left in `sending` by a dead process is sent once its lease ran out."""
    with session_scope() as session:
        row = enqueue_email(session, dedup_key="k", message=_message("r@example.com"))
        assert row is not None
        row.status = "sending"
        row.claimed_at = dt.datetime.now(dt.UTC)
    now = dt.datetime.now(dt.UTC)
    assert deliver_due_messages(now=now).sent == 0
    lease = get_settings().notify.sending_lease_s
    assert deliver_due_messages(now=now + dt.timedelta(seconds=lease + 1)).sent == 1


def test_notify_cli_status_and_retry(database_url: str) -> None:
    """`diptych notify status` counts messages per status; `retry` requeues failed ones."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    with session_scope() as session:
        row = enqueue_email(session, dedup_key="k", message=_message("r@example.com"))
        assert row is not None
        row.status = "failed"
    runner = CliRunner()
    status = runner.invoke(app, ["notify", "status"])
    retried = runner.invoke(app, ["notify", "retry"])
    assert status.exit_code == 0, status.output
    assert "failed" in status.output
    assert "Requeued 1 failed messages." in retried.output
    with session_scope() as session:
        assert count_outbox(session)["pending"] == 1
