"""A local mail sink for the demo: an SMTP server on loopback that files mail in a Maildir."""

from __future__ import annotations

import contextlib
import json
import mailbox
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from shared.settings import reset_settings

__all__ = ["DEMO_RECIPIENTS", "count_messages", "local_mail_sink"]

# One reader per console language, so the sink shows both e-mail languages.
DEMO_RECIPIENTS = [
    {"address": "risk-desk@example.com", "name": "Risk desk", "language": "en"},
    {"address": "fengkong@example.com", "name": "风控组", "language": "zh_CN"},
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def local_mail_sink(folder: Path) -> Iterator[Path]:
    """Run an SMTP server on 127.0.0.1 that stores every message in the Maildir `folder`.

    While it runs, the notify settings point at it (plain SMTP, no login) and,
    unless recipients are configured, alerts go to two demo readers, one
    reading English and one Chinese. The environment is restored afterwards.
    """
    # mailbox.Maildir creates tmp/, new/ and cur/ only when `folder` does not exist yet.
    for part in ("tmp", "new", "cur"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    port = _free_port()
    controller = Controller(Mailbox(folder), hostname="127.0.0.1", port=port)
    overrides = {
        "DIPTYCH_NOTIFY__SMTP_HOST": "127.0.0.1",
        "DIPTYCH_NOTIFY__SMTP_PORT": str(port),
        "DIPTYCH_NOTIFY__SMTP_SECURITY": "plain",
    }
    if not os.environ.get("DIPTYCH_SENTIMENT__RECIPIENTS"):
        overrides["DIPTYCH_SENTIMENT__RECIPIENTS"] = json.dumps(DEMO_RECIPIENTS)
    saved = {name: os.environ.get(name) for name in overrides}
    controller.start()
    try:
        os.environ.update(overrides)
        # The SMTP credentials of a real server must not reach the sink.
        for name in ("DIPTYCH_NOTIFY__SMTP_USERNAME", "DIPTYCH_NOTIFY__SMTP_PASSWORD"):
            saved.setdefault(name, os.environ.pop(name, None))
        reset_settings()
        yield folder
    finally:
        controller.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_settings()


def count_messages(folder: Path) -> int:
    """Return the number of messages in the Maildir `folder` (0 when it does not exist)."""
    if not (folder / "new").is_dir():
        return 0
    return len(mailbox.Maildir(folder, create=False))
