"""The agent's pages as the console serves them: queue, ticket, streamed draft, feedback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.support.models import Draft, Feedback, PiiReveal
from services.support.pages import parse_queue_filters
from services.support.pipeline import (
    process_tickets,
    retrieve_tickets,
    store_ticket,
    triage_tickets,
)
from services.support.schemas import TicketCreate
from shared.storage import session_scope
from tests.services.console.conftest import ConsoleUsers, sign_in
from tests.services.support.conftest import SupportModels


@pytest.fixture
def agent(
    support_env: SupportModels, knowledge_base: int, console_users: ConsoleUsers
) -> Iterator[tuple[TestClient, str]]:
    """A signed-in agent's client and CSRF token, with the support models in place."""
    from services.console.app import create_app

    with TestClient(create_app()) as client:
        yield client, sign_in(client, "amy")


def _drafted_ticket(text: str, **fields: str) -> int:
    ticket_id = store_ticket(TicketCreate(text=text, **fields)).ticket_id  # type: ignore[arg-type]
    process_tickets([ticket_id])
    return ticket_id


def _events(body: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        ({"status": "drafted", "min_confidence": "0.5"}, []),
        ({"status": "lost"}, ["status"]),
        ({"min_confidence": "high", "max_confidence": "1.5"}, ["min_confidence", "max_confidence"]),
        ({"min_confidence": "nan"}, ["min_confidence"]),
        ({"out_of_scope": "maybe"}, []),
    ],
)
def test_parse_queue_filters_names_invalid_values(form: dict[str, str], errors: list[str]) -> None:
    assert parse_queue_filters(form).errors == errors


def test_queue_filters_tickets(agent: tuple[TestClient, str]) -> None:
    client, _ = agent
    cancel = _drafted_ticket("How can I cancel my order?")
    refund = _drafted_ticket("I want a refund for my purchase")
    page = client.get("/support", params={"intent": "cancel_order"})
    assert page.status_code == 200
    assert f'data-ticket-id="{cancel}"' in page.text
    assert f'data-ticket-id="{refund}"' not in page.text
    rows = client.get("/support/queue/rows", params={"status": "answered"})
    assert "data-ticket-id" not in rows.text
    bad = client.get("/support", params={"min_confidence": "high"})
    assert bad.status_code == 200
    assert "min_confidence" in bad.text


def test_ticket_page_masks_until_revealed(agent: tuple[TestClient, str]) -> None:
    """Customer text is masked; a reveal shows it, is recorded, and is not cached."""
    client, token = agent
    ticket_id = _drafted_ticket("Cancel my order, mail me at li.wei@example.cn 谢谢")
    page = client.get(f"/support/tickets/{ticket_id}")
    assert "[EMAIL_1]" in page.text
    assert "li.wei@example.cn" not in page.text
    revealed = client.post(f"/support/tickets/{ticket_id}/reveal", data={"csrf_token": token})
    assert "li.wei@example.cn" in revealed.text
    assert revealed.headers["cache-control"] == "no-store"
    with session_scope() as session:
        reveals = session.scalars(select(PiiReveal)).all()
    assert [(row.ticket_id, row.agent) for row in reveals] == [(ticket_id, "amy")]


def test_missing_ticket_gets_404_page(agent: tuple[TestClient, str]) -> None:
    client, _ = agent
    assert client.get("/support/tickets/999999").status_code == 404
    assert client.get("/support/tickets/99999999999").status_code == 422
    assert client.get("/support/tickets/999999/draft/stream").status_code == 404


def test_draft_stream_sends_pieces_then_the_stored_draft(agent: tuple[TestClient, str]) -> None:
    """Server-sent events: pieces as they are written, then `done` with the stored revision."""
    client, _ = agent
    ticket_id = store_ticket(TicketCreate(text="Where is my order 77812?")).ticket_id
    triage_tickets([ticket_id])
    retrieve_tickets([ticket_id])
    response = client.get(f"/support/tickets/{ticket_id}/draft/stream")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done"
    assert kinds.count("piece") >= 1
    done = events[-1][1]
    with session_scope() as session:
        stored = session.get(Draft, done["draft_id"])
        assert stored is not None
        assert stored.text == done["text"]
        assert stored.revision == 1
    again = _events(client.get(f"/support/tickets/{ticket_id}/draft/stream").text)
    with session_scope() as session:
        assert session.get(Draft, again[-1][1]["draft_id"]).revision == 2  # type: ignore[union-attr]


def test_feedback_form_stores_each_action(agent: tuple[TestClient, str]) -> None:
    client, token = agent
    edited = _drafted_ticket("How can I cancel my order?")
    rejected = _drafted_ticket("Cancel order please")
    response = client.post(
        f"/support/tickets/{edited}/feedback",
        data={"csrf_token": token, "action": "edit", "final_text": "Done: 已取消 order."},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith("notice=feedback-edit")
    missing_reason = client.post(
        f"/support/tickets/{rejected}/feedback",
        data={"csrf_token": token, "action": "reject"},
    )
    assert missing_reason.status_code == 422
    unknown = client.post(
        f"/support/tickets/{rejected}/feedback", data={"csrf_token": token, "action": "burn"}
    )
    assert unknown.status_code == 422
    client.post(
        f"/support/tickets/{rejected}/feedback",
        data={"csrf_token": token, "action": "reject", "reason": "wrong intent"},
    )
    with session_scope() as session:
        rows = session.scalars(select(Feedback).order_by(Feedback.id)).all()
    assert [(row.ticket_id, row.action) for row in rows] == [(edited, "edit"), (rejected, "reject")]
    assert rows[0].final_text == "Done: 已取消 order."
    assert rows[1].reason == "wrong intent"


def test_feedback_on_a_stale_draft_is_refused(agent: tuple[TestClient, str]) -> None:
    """An agent who read revision 1 cannot send it once revision 2 exists."""
    client, token = agent
    ticket_id = _drafted_ticket("How can I cancel my order?")
    with session_scope() as session:
        first = session.scalar(select(Draft.id).where(Draft.ticket_id == ticket_id))
    client.get(f"/support/tickets/{ticket_id}/draft/stream")
    response = client.post(
        f"/support/tickets/{ticket_id}/feedback",
        data={"csrf_token": token, "action": "accept", "draft_id": str(first)},
    )
    assert response.status_code == 409
    with session_scope() as session:
        assert session.scalar(select(func.count(Feedback.id))) == 0


def test_knowledge_base_page_searches(agent: tuple[TestClient, str]) -> None:
    client, _ = agent
    page = client.get("/support/kb", params={"q": "cancel my order 取消"})
    assert page.status_code == 200
    assert page.text.count('class="card kb-hit"') >= 1


def test_support_api_needs_the_agent_role(
    support_env: SupportModels, console_users: ConsoleUsers, console_app: FastAPI
) -> None:
    from services.console.auth import create_api_token

    client = TestClient(console_app)
    for username, code in (("amy", 201), ("李娜", 403), ("root", 201)):
        token = create_api_token(username, name="t")
        response = client.post(
            "/api/v1/support/tickets",
            json={"text": "cancel my order"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == code, username
