"""`diptych users` and `diptych serve` from the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from pipelines.cli import app
from services.console.auth import resolve_api_token, sign_in

runner = CliRunner()


def test_users_create_reads_the_password_from_stdin(database_url: str) -> None:
    result = runner.invoke(
        app,
        [
            "users",
            "create",
            "--username",
            "王芳",
            "--role",
            "agent",
            "--language",
            "zh_CN",
            "--password-stdin",
        ],
        input="s3cret-pass\n",
    )
    assert result.exit_code == 0, result.output
    assert sign_in("王芳", "s3cret-pass", client="cli").user.language == "zh_CN"
    listed = runner.invoke(app, ["users", "list"])
    assert "王芳" in listed.output


def test_users_create_rejects_a_bad_role(database_url: str) -> None:
    result = runner.invoke(
        app,
        ["users", "create", "--username", "bob", "--role", "root", "--password-stdin"],
        input="s3cret-pass\n",
    )
    assert result.exit_code == 2
    assert "invalid role 'root'" in result.output


def test_users_create_rejects_an_unknown_time_zone(database_url: str) -> None:
    """The error names the value and the fix, before any password is read."""
    result = runner.invoke(
        app,
        [
            "users",
            "create",
            "--username",
            "bob",
            "--role",
            "agent",
            "--timezone",
            "Mars/Olympus",
            "--password-stdin",
        ],
        input="s3cret-pass\n",
    )
    assert result.exit_code == 2
    assert "invalid time zone 'Mars/Olympus'" in result.output
    assert "IANA zone name such as 'Asia/Shanghai'" in result.output
    listed = runner.invoke(app, ["users", "list"])
    assert "bob" not in listed.output


def test_users_create_stores_the_time_zone(database_url: str) -> None:
    result = runner.invoke(
        app,
        [
            "users",
            "create",
            "--username",
            "bob",
            "--role",
            "agent",
            "--timezone",
            "Asia/Shanghai",
            "--password-stdin",
        ],
        input="s3cret-pass\n",
    )
    assert result.exit_code == 0, result.output
    assert sign_in("bob", "s3cret-pass", client="cli").user.timezone == "Asia/Shanghai"


def test_users_token_prints_a_working_token(database_url: str) -> None:
    runner.invoke(
        app,
        ["users", "create", "--username", "ops", "--role", "admin", "--password-stdin"],
        input="s3cret-pass\n",
    )
    result = runner.invoke(app, ["users", "token", "--username", "ops", "--name", "deploy"])
    assert result.exit_code == 0, result.output
    user = resolve_api_token(result.output.strip())
    assert user is not None
    assert user.username == "ops"
    missing = runner.invoke(app, ["users", "token", "--username", "nobody", "--name", "x"])
    assert missing.exit_code == 2


def test_serve_help_names_host_and_port() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output
    assert "--port" in result.output


def test_serve_starts_the_console_on_loopback(database_url: str, tmp_path: Path) -> None:
    """`diptych serve` answers /healthz and redirects an anonymous page to sign-in."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "diptych serve did not start in 120 s"
                time.sleep(0.5)
        assert health.json() == {"status": "ok"}
        page = httpx.get(f"http://127.0.0.1:{port}/support", timeout=10)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        log.close()
