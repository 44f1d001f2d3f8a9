"""Every registered service plugin works inside the real console shell."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.services.console.conftest import sign_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ANALYST_PAGES = ["/sentiment", "/sentiment/alerts", "/recommender"]


def test_plugins_are_in_the_navigation(console_app: FastAPI) -> None:
    client = TestClient(console_app)
    sign_in(client, "root")
    home = client.get("/").text

    for path in ["/support", "/sentiment", "/recommender", "/models"]:
        assert f'href="{path}"' in home


@pytest.mark.parametrize("path", ANALYST_PAGES)
def test_analyst_pages_render_in_the_shell(console_app: FastAPI, path: str) -> None:
    """The analyst (Chinese interface) opens each page without a server error."""
    client = TestClient(console_app)
    sign_in(client, "李娜")
    response = client.get(path)

    assert response.status_code < 500, response.text[:500]
    assert 'name="csrf-token"' in response.text or response.status_code != 200


@pytest.mark.parametrize("path", ["/sentiment", "/recommender"])
def test_agent_is_refused_analyst_pages(console_app: FastAPI, path: str) -> None:
    client = TestClient(console_app)
    sign_in(client, "amy")

    assert client.get(path).status_code == 403


def test_service_apis_are_mounted(console_app: FastAPI) -> None:
    paths = TestClient(console_app).get("/api/v1/openapi.json").json()["paths"]

    assert any(path.startswith("/api/v1/sentiment/") for path in paths)
    assert any(path.startswith("/api/v1/recommendations/") for path in paths)
    assert any(path.startswith("/api/v1/support/") for path in paths)
