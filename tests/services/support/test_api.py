"""The support REST routes: intake, queue, ticket view, feedback and the knowledge base."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from services.support.api import router
from shared.api import install_error_handlers
from shared.console import ConsoleUser
from tests.services.support.conftest import SupportModels

AGENT = ConsoleUser(id=7, username="amy", role="agent")


@pytest.fixture
def client(support_env: SupportModels, knowledge_base: int) -> Iterator[TestClient]:
    """The support router as the console mounts it, under /api/v1, signed in as amy."""
    app = FastAPI()
    install_error_handlers(app)

    @app.middleware("http")
    async def sign_in(request: Request, call_next: Callable[[Request], Awaitable[Response]]):
        # The console's AuthMiddleware puts the signed-in user here.
        request.state.user = AGENT
        return await call_next(request)

    app.include_router(router, prefix="/api/v1")
    with TestClient(app) as test_client:
        yield test_client


def test_create_ticket_runs_the_pipeline_and_shows_the_draft(client: TestClient) -> None:
    """A submitted ticket is triaged, retrieved and drafted; its view shows all three."""
    response = client.post(
        "/api/v1/support/tickets",
        json={"text": "<p>How can I cancel my order?</p>", "external_id": "web-1"},
    )
    assert response.status_code == 201, response.text
    ticket_id = response.json()["id"]
    detail = client.get(f"/api/v1/support/tickets/{ticket_id}").json()
    assert detail["text"] == "How can I cancel my order?"
    assert detail["intent"] == "cancel_order"
    assert len(detail["passages"]) == 5
    assert detail["draft"]["ticket_id"] == ticket_id

    again = client.post(
        "/api/v1/support/tickets", json={"text": "different", "external_id": "web-1"}
    )
    assert again.json() == {"id": ticket_id, "created": False}


def test_feedback_routes_validate_the_action(client: TestClient) -> None:
    """Reject needs a reason, edit needs text; a ticket without a draft gives 404."""
    ticket_id = client.post("/api/v1/support/tickets", json={"text": "refund please"}).json()["id"]
    url = f"/api/v1/support/tickets/{ticket_id}/feedback"
    assert client.post(url, json={"action": "reject"}).status_code == 422
    assert client.post(url, json={"action": "edit", "final_text": " "}).status_code == 422
    stored = client.post(url, json={"action": "edit", "final_text": "Refund sent."})
    assert stored.status_code == 201
    assert stored.json()["action"] == "edit"
    assert stored.json()["agent"] == "amy"
    assert client.get(f"/api/v1/support/tickets/{ticket_id}").json()["status"] == "answered"
    missing = client.post("/api/v1/support/tickets/99999/feedback", json={"action": "accept"})
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"text": ""}, 422),
        ({"text": "   \n\t "}, 422),
        ({"text": "<div><br/></div>&nbsp;"}, 422),
        ({"text": "x" * 20_001}, 422),
        ({"text": 42}, 422),
        ({}, 422),
        ({"text": "ok", "channel": "carrier-pigeon"}, 422),
        ({"text": "订单 cancel 😀 please \u202e\u0000 now"}, 201),
        ({"text": "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt; cancel order"}, 201),
    ],
)
def test_create_ticket_hostile_input_gets_a_clear_answer(
    client: TestClient, payload: dict[str, object], status: int
) -> None:
    """Bad input is refused with 422 and a message; odd but real text is accepted. Never 5xx."""
    response = client.post("/api/v1/support/tickets", json=payload)
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["detail"]


def test_create_ticket_raw_bodies_never_cause_a_server_error(client: TestClient) -> None:
    """Malformed JSON, non-UTF-8 bytes and an escaped lone surrogate get a 4xx, never a 5xx."""
    for body in (b"{not json", b'{"text": "\xff\xfe"}'):
        response = client.post(
            "/api/v1/support/tickets", content=body, headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, response.text
    surrogate = client.post(
        "/api/v1/support/tickets",
        content=b'{"text": "\\ud800 cancel my order"}',
        headers={"content-type": "application/json"},
    )
    assert surrogate.status_code == 422, surrogate.text
    assert surrogate.json()["detail"][0]["loc"] == ["body", "text"]


def test_batch_intake_refuses_bad_items_and_keeps_the_rest(client: TestClient) -> None:
    """One empty ticket in a batch is reported; the others are stored."""
    response = client.post(
        "/api/v1/support/tickets/batch",
        json={"tickets": [{"text": "track my order"}, {"text": "<br>"}, {"text": "退款"}]},
    )
    assert response.status_code == 200
    items = response.json()
    assert [item["error"] is None for item in items] == [True, False, True]
    assert "empty" in items[1]["error"]


def test_feedback_records_signed_in_agent(client: TestClient) -> None:
    """The agent is whoever is signed in; a name in the body is ignored."""
    ticket_id = client.post("/api/v1/support/tickets", json={"text": "refund please"}).json()["id"]
    response = client.post(
        f"/api/v1/support/tickets/{ticket_id}/feedback",
        json={"action": "reject", "reason": "wrong tone", "agent": "mallory"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["agent"] == "amy"


def test_queue_filters(client: TestClient) -> None:
    """The queue lists tickets by filter; bad filter values get 422."""
    client.post("/api/v1/support/tickets", json={"text": "How do I recover my password?"})
    listed = client.get("/api/v1/support/tickets", params={"intent": "recover_password"})
    assert [t["intent"] for t in listed.json()] == ["recover_password"]
    assert client.get("/api/v1/support/tickets", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/support/tickets", params={"min_confidence": 2}).status_code == 422
    assert client.get("/api/v1/support/tickets/abc").status_code == 422
    assert client.get("/api/v1/support/tickets/424242").status_code == 404


@pytest.mark.parametrize("body", ["", "   ", "\n\t "])
def test_knowledge_base_rejects_blank_article(client: TestClient, body: str) -> None:
    response = client.post("/api/v1/support/kb/articles", json={"body": body, "title": "x"})

    assert response.status_code == 422


def test_knowledge_base_add_search_and_retire(client: TestClient) -> None:
    """A new article is searchable at once; a retired one disappears from results."""
    body = "Gift cards never expire and can be used on {{Website URL}}."
    created = client.post("/api/v1/support/kb/articles", json={"body": body, "title": "Gift cards"})
    assert created.status_code == 201
    article_id = created.json()["id"]
    assert created.json()["slots"] == ["Website URL"]
    hits = client.get("/api/v1/support/kb/search", params={"q": "do gift cards expire"}).json()
    assert hits[0]["article"]["id"] == article_id
    assert client.delete(f"/api/v1/support/kb/articles/{article_id}").status_code == 204
    hits = client.get("/api/v1/support/kb/search", params={"q": "do gift cards expire"}).json()
    assert article_id not in [hit["article"]["id"] for hit in hits]
    assert client.delete(f"/api/v1/support/kb/articles/{article_id}").status_code == 404
    assert client.get("/api/v1/support/kb/search", params={"q": ""}).status_code == 422
