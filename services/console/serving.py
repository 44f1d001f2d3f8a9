"""The uvicorn server that runs the console and stops it promptly.

uvicorn stops accepting connections on SIGINT or SIGTERM, then waits for open
responses to finish. A streamed draft can run for minutes on a CPU, so the
server also sets the app's shutdown event (`shared.console.is_shutting_down`)
on the first signal: streams end within a fraction of a second and stop their
drafter. Requests still open after `console.shutdown_timeout_s` are cancelled.
"""

from __future__ import annotations

import logging
import threading
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

__all__ = ["ConsoleServer", "build_server"]

logger = logging.getLogger(__name__)


class ConsoleServer(uvicorn.Server):
    """A uvicorn server that sets `shutdown` when it receives its first stop signal."""

    def __init__(self, config: uvicorn.Config, *, shutdown: threading.Event) -> None:
        super().__init__(config)
        self.shutdown_event = shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Tell long responses to end, then let uvicorn begin its shutdown."""
        if not self.shutdown_event.is_set():
            logger.info("console shutting down signal=%s", sig)
        self.shutdown_event.set()
        super().handle_exit(sig, frame)


def build_server(app: FastAPI, *, host: str, port: int, **options: Any) -> ConsoleServer:
    """Build the server for an app from `services.console.app.create_app`.

    Args:
        app: The console app; its ``state.shutdown`` event is set on the stop signal.
        host: Address to bind.
        port: Port to bind.
        **options: Further `uvicorn.Config` options, e.g. ``proxy_headers``.

    Raises:
        RuntimeError: If the app has no ``state.shutdown`` event.
    """
    shutdown = getattr(app.state, "shutdown", None)
    if not isinstance(shutdown, threading.Event):
        raise RuntimeError(
            "the app has no state.shutdown event; build it with services.console.app.create_app"
        )
    config = uvicorn.Config(app, host=host, port=port, **options)
    return ConsoleServer(config, shutdown=shutdown)
