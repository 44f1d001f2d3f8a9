"""An SMTP server on loopback for tests (aiosmtpd), that can be stopped and started again.

Example::

    def test_send(smtp_server):
        ...  # DIPTYCH_NOTIFY__SMTP_HOST and _PORT point at the server
        assert smtp_server.handler.parsed()[0]["Subject"] == "..."
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from shared.settings import reset_settings

__all__ = [
    "RecordingHandler",
    "SmtpServer",
    "free_port",
    "smtp_server",
    "write_self_signed_certificate",
]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RecordingHandler:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        """Store the message and accept it (aiosmtpd's DATA hook)."""
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)  # type: ignore[attr-defined]
        )
        return "250 Message accepted for delivery"

    def parsed(self) -> list[EmailMessage]:
        """Return the accepted messages, parsed with the default policy."""
        return [
            message_from_bytes(data, policy=policy.default)  # type: ignore[misc]
            for _sender, _recipients, data in self.messages
        ]


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that can be stopped and started again on its port.

    Args:
        options: Keyword arguments for aiosmtpd's `Controller` and SMTP server,
            such as `tls_context`, `require_starttls`, `authenticator` or
            `ssl_context` (implicit TLS).
    """

    def __init__(self, **options: Any) -> None:
        self.port = free_port()
        self.handler = RecordingHandler()
        self.options = options
        self._controller: Controller | None = None

    def start(self) -> None:
        """Start listening."""
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, **self.options
        )
        self._controller.start()

    def stop(self) -> None:
        """Stop listening; connections are then refused."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A running SMTP server, set as the notify settings' host and port."""
    server = SmtpServer()
    server.start()
    monkeypatch.setenv("DIPTYCH_NOTIFY__SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DIPTYCH_NOTIFY__SMTP_PORT", str(server.port))
    monkeypatch.setenv("DIPTYCH_NOTIFY__SMTP_TIMEOUT_S", "5")
    monkeypatch.setenv("DIPTYCH_NOTIFY__SENDER", "风险监控 <monitor@example.com>")
    reset_settings()
    yield server
    server.stop()


def write_self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 and its key as PEM files; return (certificate, key)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path = folder / "smtp-cert.pem"
    key_path = folder / "smtp-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path
