"""The e-mail outbox: enqueue in the caller's transaction, deliver with retries and backoff.

A notification and its outbox rows commit together, so a crash can lose
neither. Delivery claims due rows: ``pending`` ones that are due, and
``sending`` ones past their lease because the process that claimed them
died. It sends each and marks it ``sent``. A failure schedules the next
attempt after an exponentially growing wait, until
`NotifySettings.max_attempts` is reached.

A message is sent twice only if the process dies after the SMTP server
accepted it and before ``sent`` is committed; it then goes out again with
the same Message-ID, which mail clients use to drop the copy.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from shared.notify.models import OutboxMessage
from shared.notify.smtp import send_raw_message
from shared.settings import NotifySettings, get_settings
from shared.storage import session_scope

__all__ = [
    "DeliveryReport",
    "Sender",
    "compute_backoff_s",
    "count_outbox",
    "deliver_due_messages",
    "enqueue_email",
    "retry_failed_messages",
]

logger = logging.getLogger(__name__)

Sender = Callable[..., None]


@dataclass(frozen=True)
class DeliveryReport:
    """Counts of one delivery pass."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def enqueue_email(
    session: Session, *, dedup_key: str, message: EmailMessage, now: dt.datetime | None = None
) -> OutboxMessage | None:
    """Add `message` to the outbox in `session`'s transaction, once per `dedup_key`.

    Args:
        session: The caller's session; the row commits with the caller's work.
        dedup_key: Identity of this notification and recipient.
        message: A complete message with one To address and a Message-ID.
        now: When the first attempt is due; defaults to the current time.

    Returns:
        The new row, or ``None`` when `dedup_key` was already enqueued.

    Raises:
        ValueError: The message lacks a Message-ID or has not exactly one To address.
    """
    existing = session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedup_key == dedup_key))
    if existing is not None:
        return None
    recipients = getaddresses(message.get_all("To", []))
    if len(recipients) != 1 or not recipients[0][1]:
        raise ValueError(
            f"an outbox message needs exactly one To address, got {message.get_all('To')!r}; "
            "enqueue one message per recipient."
        )
    if not message["Message-ID"]:
        raise ValueError(
            f"message {dedup_key!r} has no Message-ID; set one with email.utils.make_msgid()."
        )
    row = OutboxMessage(
        dedup_key=dedup_key,
        recipient=recipients[0][1],
        subject=str(message["Subject"] or ""),
        message_id=str(message["Message-ID"]),
        # SMTP needs CRLF line ends; smtplib sends bytes as they are.
        message=message.as_bytes(policy=policy.SMTP),
        status="pending",
        attempts=0,
        next_attempt_at=now or _utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def compute_backoff_s(attempts: int, settings: NotifySettings) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: base * 2^(attempts-1), capped."""
    return float(min(settings.backoff_base_s * 2 ** max(attempts - 1, 0), settings.backoff_max_s))


def deliver_due_messages(
    *,
    now: dt.datetime | None = None,
    limit: int = 100,
    settings: NotifySettings | None = None,
    send: Sender = send_raw_message,
) -> DeliveryReport:
    """Send every outbox message that is due, at most `limit` of them.

    Args:
        now: The current time; tests pass a later time to skip the backoff wait.
        limit: Maximum number of messages to claim in this pass.
        settings: SMTP and retry settings; defaults to the configured ones.
        send: The function that sends one message (`send_raw_message`).

    Returns:
        Counts of messages sent, scheduled for another attempt, and given up.
    """
    settings = settings or get_settings().notify
    now = now or _utcnow()
    claimed = _claim_due(now=now, limit=limit, settings=settings)
    sent = retried = failed = 0
    for message_id in claimed:
        outcome = _deliver_one(message_id, now=now, settings=settings, send=send)
        sent += outcome == "sent"
        retried += outcome == "pending"
        failed += outcome == "failed"
    if claimed:
        logger.info("outbox pass sent=%d retried=%d failed=%d", sent, retried, failed)
    return DeliveryReport(sent=sent, retried=retried, failed=failed)


def _claim_due(*, now: dt.datetime, limit: int, settings: NotifySettings) -> list[int]:
    stale = now - dt.timedelta(seconds=settings.sending_lease_s)
    with session_scope() as session:
        query = (
            select(OutboxMessage)
            .where(
                or_(
                    (OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= now),
                    (OutboxMessage.status == "sending") & (OutboxMessage.claimed_at <= stale),
                )
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list(session.scalars(query))
        for row in rows:
            row.status = "sending"
            row.claimed_at = now
            row.attempts += 1
        return [row.id for row in rows]


def _deliver_one(
    message_id: int, *, now: dt.datetime, settings: NotifySettings, send: Sender
) -> str:
    with session_scope() as session:
        row = session.get(OutboxMessage, message_id)
        if row is None or row.status != "sending":
            return "skipped"
        data, recipient, attempts = row.message, row.recipient, row.attempts
    sender = _envelope_sender(data)
    try:
        send(data, sender=sender, recipient=recipient, settings=settings)
    except (OSError, ValueError) as exc:
        # ValueError covers what smtplib raises before talking to the server,
        # such as an address it cannot encode; the pass goes on with the rest.
        return _record_failure(message_id, attempts=attempts, error=exc, now=now, settings=settings)
    with session_scope() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(status="sent", sent_at=_utcnow(), last_error=None)
        )
    logger.info("outbox sent id=%d attempts=%d", message_id, attempts)
    return "sent"


def _record_failure(
    message_id: int,
    *,
    attempts: int,
    error: Exception,
    now: dt.datetime,
    settings: NotifySettings,
) -> str:
    given_up = attempts >= settings.max_attempts
    status = "failed" if given_up else "pending"
    wait_s = compute_backoff_s(attempts, settings)
    text = f"{type(error).__name__}: {error}"
    with session_scope() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(
                status=status,
                last_error=text[:2000],
                next_attempt_at=now + dt.timedelta(seconds=wait_s),
                claimed_at=None,
            )
        )
    if given_up:
        logger.error(
            "outbox gave up id=%d attempts=%d error=%s; run `diptych notify retry` once the "
            "mail server works",
            message_id,
            attempts,
            text,
        )
    else:
        logger.warning(
            "outbox attempt failed id=%d attempts=%d retry_in_s=%.0f error=%s",
            message_id,
            attempts,
            wait_s,
            text,
        )
    return status


def _envelope_sender(data: bytes) -> str:
    from email import message_from_bytes

    parsed = message_from_bytes(data, policy=policy.default)
    addresses = getaddresses(parsed.get_all("From", []))
    return addresses[0][1] if addresses else ""


def retry_failed_messages(*, now: dt.datetime | None = None) -> int:
    """Put every `failed` message back to `pending` with a fresh attempt count; return how many."""
    with session_scope() as session:
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "failed")
            .values(status="pending", attempts=0, next_attempt_at=now or _utcnow())
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def count_outbox(session: Session) -> dict[str, int]:
    """Return the number of outbox messages per status."""
    rows = session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    ).all()
    counts = dict.fromkeys(("pending", "sending", "sent", "failed"), 0)
    counts.update({status: int(count) for status, count in rows})
    return counts
