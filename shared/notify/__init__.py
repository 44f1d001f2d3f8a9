"""E-mail through SMTP with an outbox table, so nothing is lost while the mail server is down."""

from shared.notify.models import OUTBOX_STATUSES, OutboxMessage
from shared.notify.outbox import (
    DeliveryReport,
    compute_backoff_s,
    count_outbox,
    deliver_due_messages,
    enqueue_email,
    retry_failed_messages,
)
from shared.notify.smtp import send_raw_message

__all__ = [
    "OUTBOX_STATUSES",
    "DeliveryReport",
    "OutboxMessage",
    "compute_backoff_s",
    "count_outbox",
    "deliver_due_messages",
    "enqueue_email",
    "retry_failed_messages",
    "send_raw_message",
]
