"""The console served by uvicorn on 127.0.0.1 in a thread, for browser and schema tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from services.console.app import create_app
from services.console.serving import ConsoleServer, build_server

__all__ = ["run_console_server", "serve_console"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_console(timeout_s: float = 30.0) -> Iterator[str]:
    """Serve a new console app and yield its base URL; stop it afterwards.

    The server runs in this process, so it reads the test's settings and database.
    """
    with run_console_server(timeout_s=timeout_s) as (server, _thread):
        yield f"http://127.0.0.1:{server.config.port}"


@contextmanager
def run_console_server(
    timeout_s: float = 30.0,
) -> Iterator[tuple[ConsoleServer, threading.Thread]]:
    """Serve a new console app as `diptych serve` does; yield the server and its thread."""
    server = build_server(
        create_app(),
        host="127.0.0.1",
        port=_free_port(),
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=timeout_s,
    )
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the console did not start on port {server.config.port}")
        time.sleep(0.05)
    try:
        yield server, thread
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
