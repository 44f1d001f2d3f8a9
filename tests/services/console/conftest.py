"""Console fixtures: users of each role, the app, and signed-in test clients."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.console.app import create_app
from services.console.auth import create_api_token, create_user
from shared.console import ConsoleUser
from tests.services.support.conftest import (  # noqa: F401
    knowledge_base,
    support_env,
    support_models,
)

PASSWORD = "correct horse 42"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@dataclass(frozen=True)
class ConsoleUsers:
    """One user per role; the analyst reads Chinese."""

    agent: ConsoleUser
    analyst: ConsoleUser
    admin: ConsoleUser


@pytest.fixture
def console_users(database_url: str) -> ConsoleUsers:
    """An agent, an analyst (zh_CN) and an admin in a migrated, empty database."""
    return ConsoleUsers(
        agent=create_user("amy", PASSWORD, role="agent"),
        analyst=create_user("李娜", PASSWORD, role="analyst", language="zh_CN"),
        admin=create_user("root", PASSWORD, role="admin"),
    )


@pytest.fixture
def console_app(console_users: ConsoleUsers) -> FastAPI:
    """The console with every registered plugin."""
    return create_app()


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign `client` in through the sign-in form and return the session's CSRF token."""
    client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": client.cookies.get("diptych_csrf") or "",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = client.get("/")
    match = _CSRF_META.search(home.text)
    assert match is not None, home.text[:500]
    return match.group(1)


@pytest.fixture
def api_token(console_users: ConsoleUsers) -> str:
    """An API token of the admin, who may use every route."""
    return create_api_token(console_users.admin.username, name="tests")
