"""The agent's pages as the console serves them: queue, ticket, streamed draft, feedback."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from transformers import GenerationConfig

from services.console.auth import create_api_token
from services.support.models import Draft, Feedback, PiiReveal, Ticket
from services.support.pages import parse_queue_filters
from services.support.pipeline import (
    process_tickets,
    retrieve_tickets,
    store_ticket,
    triage_tickets,
)
from services.support.schemas import TicketCreate
from shared.generation import TextGenerator
from shared.generation._streaming import STREAM_THREAD_NAME
from shared.settings import reset_settings
from shared.storage import session_scope
from tests.services.console.conftest import ConsoleUsers, sign_in
from tests.services.console.live import run_console_server, serve_console
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


@pytest.mark.parametrize("path", ["/support", "/support/queue/rows"])
def test_queue_and_its_rows_read_the_same_filters(agent: tuple[TestClient, str], path: str) -> None:
    """The page and its refresh accept the same filters with the same limits."""
    client, _ = agent
    cancel = _drafted_ticket("How can I cancel my order?")
    listed = client.get(path, params={"intent": "cancel_order", "needs_human": "no"})
    assert listed.status_code == 200
    assert f'data-ticket-id="{cancel}"' in listed.text
    assert "data-ticket-id" not in client.get(path, params={"intent": "get_refund"}).text
    for name, limit in [("status", 16), ("intent", 200), ("max_confidence", 200)]:
        too_long = client.get(path, params={name: "x" * (limit + 1)})
        assert too_long.status_code == 422, name


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


def test_answered_ticket_stream_writes_no_draft(agent: tuple[TestClient, str]) -> None:
    """An answered ticket is not redrafted: the stream sends the reply that was sent."""
    client, token = agent
    ticket_id = _drafted_ticket("How can I cancel my order?")
    client.post(
        f"/support/tickets/{ticket_id}/feedback",
        data={"csrf_token": token, "action": "edit", "final_text": "Cancelled, refund in 5 days."},
    )
    with session_scope() as session:
        first = session.scalar(select(Draft.id).where(Draft.ticket_id == ticket_id))

    events = _events(client.get(f"/support/tickets/{ticket_id}/draft/stream").text)

    assert events == [
        (
            "answered",
            {"draft_id": first, "text": "Cancelled, refund in 5 days.", "status": "answered"},
        )
    ]
    with session_scope() as session:
        assert session.scalar(select(func.count(Draft.id))) == 1
    page = client.get(f"/support/tickets/{ticket_id}")
    assert 'id="redraft"' not in page.text
    assert 'data-autostart="0"' in page.text
    assert 'id="answered-notice"' in page.text
    assert ">Cancelled, refund in 5 days.</div>" in page.text


def test_drafted_ticket_page_offers_a_new_draft(agent: tuple[TestClient, str]) -> None:
    client, _ = agent
    ticket_id = _drafted_ticket("How can I cancel my order?")
    page = client.get(f"/support/tickets/{ticket_id}")
    assert 'id="redraft"' in page.text
    assert 'id="answered-notice"' not in page.text


def test_draft_stream_without_passages_sends_no_answer(agent: tuple[TestClient, str]) -> None:
    """With no passage the stream ends in `no_answer`: no text, the human queue, no accept."""
    client, token = agent
    # Triaged but never retrieved, so the ticket has no passage.
    ticket_id = store_ticket(TicketCreate(text="Where is order 12345?")).ticket_id
    triage_tickets([ticket_id])
    events = _events(client.get(f"/support/tickets/{ticket_id}/draft/stream").text)
    kind, done = events[-1]
    assert kind == "done"
    assert done["kind"] == "no_answer"
    assert done["text"] == ""
    assert done["citations"] == []
    with session_scope() as session:
        stored = session.get(Draft, done["draft_id"])
        ticket = session.get(Ticket, ticket_id)
        assert stored is not None and ticket is not None
        assert stored.kind == "no_answer"
        assert stored.text == ""
        assert ticket.needs_human is True
    accepted = client.post(
        f"/support/tickets/{ticket_id}/feedback",
        data={"csrf_token": token, "action": "accept", "draft_id": str(done["draft_id"])},
    )
    assert accepted.status_code == 422
    assert "This draft has no text." in accepted.text


def test_feedback_api_records_the_token_user(agent: tuple[TestClient, str]) -> None:
    """Feedback sent with an API token is recorded under the token's user."""
    client, _ = agent
    ticket_id = _drafted_ticket("How can I cancel my order?")
    token = create_api_token("amy", name="helpdesk-bot")
    response = TestClient(client.app).post(
        f"/api/v1/support/tickets/{ticket_id}/feedback",
        json={"action": "accept"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["agent"] == "amy"
    with session_scope() as session:
        assert session.scalars(select(Feedback.agent)).all() == ["amy"]


def _slow_down_drafting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make each streamed draft write its 200 tokens, one piece per 100 ms; return the pieces."""
    monkeypatch.setenv("DIPTYCH_SUPPORT__MAX_NEW_TOKENS", "200")
    reset_settings()
    produced: list[str] = []
    original_config = TextGenerator._generation_config
    original_stream = TextGenerator.stream

    def config_without_early_end(self: TextGenerator, **options: Any) -> GenerationConfig:
        config = original_config(self, **options)
        config.min_new_tokens = config.max_new_tokens  # the random drafter cannot stop early
        return config

    def slow_stream(self: TextGenerator, prompt: str, **options: Any) -> Iterator[str]:
        with closing(original_stream(self, prompt, **options)) as pieces:
            for piece in pieces:
                produced.append(piece)
                time.sleep(0.1)
                yield piece

    monkeypatch.setattr(TextGenerator, "_generation_config", config_without_early_end)
    monkeypatch.setattr(TextGenerator, "stream", slow_stream)
    return produced


def _retrieved_ticket(text: str) -> int:
    ticket_id = store_ticket(TicketCreate(text=text)).ticket_id
    triage_tickets([ticket_id])
    retrieve_tickets([ticket_id])
    return ticket_id


def _drafting_threads(ticket_id: int) -> list[threading.Thread]:
    names = {f"draft-{ticket_id}", STREAM_THREAD_NAME}
    return [thread for thread in threading.enumerate() if thread.name in names]


def _wait_for_drafting_to_end(ticket_id: int, *, timeout_s: float) -> float:
    started = time.monotonic()
    while _drafting_threads(ticket_id):
        assert time.monotonic() - started < timeout_s, "drafting went on after the stream ended"
        time.sleep(0.05)
    return time.monotonic() - started


def test_draft_stream_stops_drafting_when_the_client_leaves(
    support_env: SupportModels,
    knowledge_base: int,
    console_users: ConsoleUsers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A browser that leaves mid-draft stops the drafter; nothing half-written is stored."""
    # Given a draft that would take 20 s or more to write
    produced = _slow_down_drafting(monkeypatch)
    ticket_id = _retrieved_ticket("Where is my order 77812?")
    headers = {"Authorization": f"Bearer {create_api_token('amy', name='t')}"}

    # When the client reads the first piece and closes the connection
    with serve_console() as url:
        stream_url = f"{url}/support/tickets/{ticket_id}/draft/stream"
        with httpx.stream("GET", stream_url, headers=headers, timeout=60) as response:
            assert response.status_code == 200
            assert "event: piece" in _lines_until_piece(response.iter_lines())
        waited_s = _wait_for_drafting_to_end(ticket_id, timeout_s=10)
        written = len(produced)
        time.sleep(0.5)

        # Then drafting has stopped within about a second, far before its end
        assert waited_s < 3
        assert len(produced) == written
        assert written < 30
    with session_scope() as session:
        assert session.scalar(select(func.count(Draft.id))) == 0


def test_draft_stream_ends_when_the_server_stops(
    support_env: SupportModels,
    knowledge_base: int,
    console_users: ConsoleUsers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop signal ends open draft streams at once, so the server exits promptly."""
    produced = _slow_down_drafting(monkeypatch)
    ticket_id = _retrieved_ticket("Where is my order 77812?")
    headers = {"Authorization": f"Bearer {create_api_token('amy', name='t')}"}
    # The graceful-shutdown timeout is 30 s, so a prompt exit comes from the stream itself.
    with run_console_server(timeout_s=30) as (server, thread):
        stream_url = (
            f"http://127.0.0.1:{server.config.port}/support/tickets/{ticket_id}/draft/stream"
        )
        with httpx.stream("GET", stream_url, headers=headers, timeout=60) as response:
            lines = response.iter_lines()
            _lines_until_piece(lines)
            signalled = time.monotonic()
            server.handle_exit(signal.SIGINT, None)
            rest = list(lines)
        thread.join(timeout=10)
        stopped_s = time.monotonic() - signalled

        assert not thread.is_alive()
        assert stopped_s < 3
    assert "event: done" not in rest
    _wait_for_drafting_to_end(ticket_id, timeout_s=5)
    assert len(produced) < 30
    with session_scope() as session:
        assert session.scalar(select(func.count(Draft.id))) == 0


def _lines_until_piece(lines: Iterator[str]) -> list[str]:
    read = []
    for line in lines:
        read.append(line)
        if line == "event: piece":
            break
    return read


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
