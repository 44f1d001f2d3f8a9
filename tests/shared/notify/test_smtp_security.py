"""SMTP security modes against aiosmtpd on loopback: STARTTLS with login, implicit TLS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from shared.notify import send_raw_message
from shared.settings import NotifySettings
from tests._smtp import SmtpServer, write_self_signed_certificate

USER, PASSWORD = "monitor", "s3cret-pass"


def _authenticate(
    server: object, session: object, envelope: object, mechanism: str, data: object
) -> AuthResult:
    """Accept exactly USER and PASSWORD."""
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    cert, key = write_self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


def _message() -> bytes:
    message = EmailMessage()
    message["Subject"] = "安全测试"
    message["From"] = "monitor@example.com"
    message["To"] = "risk@example.com"
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content("body")
    from email import policy

    return message.as_bytes(policy=policy.SMTP)


@pytest.fixture
def starttls_server(certificate: tuple[Path, ssl.SSLContext]) -> Iterator[SmtpServer]:
    server = SmtpServer(
        tls_context=certificate[1],
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    server.start()
    yield server
    server.stop()


def test_starttls_with_login_delivers(
    starttls_server: SmtpServer, certificate: tuple[Path, ssl.SSLContext]
) -> None:
    """STARTTLS with the server's CA file and a login sends the message."""
    settings = NotifySettings(
        smtp_port=starttls_server.port,
        smtp_security="starttls",
        smtp_username=USER,
        smtp_password=SecretStr(PASSWORD),
        smtp_ca_file=certificate[0],
        smtp_timeout_s=5,
    )
    send_raw_message(
        _message(), sender="monitor@example.com", recipient="risk@example.com", settings=settings
    )
    assert [m["Subject"] for m in starttls_server.handler.parsed()] == ["安全测试"]


def test_wrong_password_raises_oserror(
    starttls_server: SmtpServer, certificate: tuple[Path, ssl.SSLContext]
) -> None:
    """A rejected login raises an OSError subclass, which the outbox retries."""
    settings = NotifySettings(
        smtp_port=starttls_server.port,
        smtp_security="starttls",
        smtp_username=USER,
        smtp_password=SecretStr("wrong"),
        smtp_ca_file=certificate[0],
        smtp_timeout_s=5,
    )
    with pytest.raises(OSError):
        send_raw_message(
            _message(),
            sender="monitor@example.com",
            recipient="risk@example.com",
            settings=settings,
        )
    assert starttls_server.handler.messages == []


def test_plain_is_refused_when_server_requires_starttls(starttls_server: SmtpServer) -> None:
    """Plain mode against a server that requires STARTTLS fails instead of sending in clear."""
    settings = NotifySettings(smtp_port=starttls_server.port, smtp_timeout_s=5)
    with pytest.raises(OSError):
        send_raw_message(
            _message(),
            sender="monitor@example.com",
            recipient="risk@example.com",
            settings=settings,
        )


def test_implicit_tls_delivers(certificate: tuple[Path, ssl.SSLContext]) -> None:
    """`ssl` mode talks TLS from the first byte."""
    server = SmtpServer(ssl_context=certificate[1])
    server.start()
    try:
        settings = NotifySettings(
            smtp_port=server.port,
            smtp_security="ssl",
            smtp_ca_file=certificate[0],
            smtp_timeout_s=5,
        )
        send_raw_message(
            _message(),
            sender="monitor@example.com",
            recipient="risk@example.com",
            settings=settings,
        )
    finally:
        server.stop()
    assert len(server.handler.messages) == 1


def test_untrusted_certificate_is_rejected(certificate: tuple[Path, ssl.SSLContext]) -> None:
    """Without the CA file the self-signed certificate is not trusted."""
    server = SmtpServer(ssl_context=certificate[1])
    server.start()
    try:
        settings = NotifySettings(smtp_port=server.port, smtp_security="ssl", smtp_timeout_s=5)
        with pytest.raises(ssl.SSLError):
            send_raw_message(
                _message(),
                sender="monitor@example.com",
                recipient="risk@example.com",
                settings=settings,
            )
    finally:
        server.stop()
    assert server.handler.messages == []


def test_non_ascii_credentials_are_rejected() -> None:
    """smtplib cannot send non-ASCII credentials, so the settings refuse them with the fix."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be ASCII"):
        NotifySettings(smtp_username="monitor", smtp_password=SecretStr("密码"))
