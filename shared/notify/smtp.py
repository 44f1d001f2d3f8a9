"""Sending one stored message over SMTP: plain, STARTTLS or implicit TLS, optional login."""

from __future__ import annotations

import smtplib
import ssl

from shared.settings import NotifySettings

__all__ = ["send_raw_message"]


def _tls_context(settings: NotifySettings) -> ssl.SSLContext:
    cafile = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
    return ssl.create_default_context(cafile=cafile)


def send_raw_message(data: bytes, *, sender: str, recipient: str, settings: NotifySettings) -> None:
    """Send the RFC 5322 message `data` to `recipient` through the configured server.

    The bytes go out unchanged, so a retried message is identical to its first
    attempt, Message-ID included.

    Args:
        data: The serialised message.
        sender: Envelope sender address (the From address).
        recipient: Envelope recipient address.
        settings: The server, security mode and credentials.

    Raises:
        OSError: The server cannot be reached, rejected the message or the
            connection dropped (`smtplib.SMTPException` is a subclass).
    """
    client: smtplib.SMTP
    if settings.smtp_security == "ssl":
        client = smtplib.SMTP_SSL(
            settings.smtp_host,
            settings.smtp_port,
            timeout=settings.smtp_timeout_s,
            context=_tls_context(settings),
        )
    else:
        client = smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s
        )
    with client:
        if settings.smtp_security == "starttls":
            client.starttls(context=_tls_context(settings))
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            client.login(settings.smtp_username, password)
        client.sendmail(sender, [recipient], data)
