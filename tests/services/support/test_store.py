"""Database reads and writes of the support service, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from services.support import store
from services.support.errors import TicketNotFoundError
from shared.storage import session_scope


def _passages(n: int) -> list[store.PassageRecord]:
    return [
        store.PassageRecord(rank=r, kind="article", source_id=r, score=1.0 / r, text=f"p{r}")
        for r in range(1, n + 1)
    ]


def test_create_ticket_returns_the_stored_ticket_for_a_known_external_id(database_url: str) -> None:
    """Submitting the same external id twice stores one ticket."""
    with session_scope() as session:
        first, created = store.create_ticket(session, text="hello", external_id="ext-1")
        assert created
    with session_scope() as session:
        again, created_again = store.create_ticket(session, text="other", external_id="ext-1")
        assert not created_again
        assert again.id == first.id
        assert again.text == "hello"
        assert [m.author for m in again.messages] == ["customer"]


def test_get_ticket_unknown_id_raises(database_url: str) -> None:
    """An unknown id raises an error that names it."""
    with session_scope() as session, pytest.raises(TicketNotFoundError, match="12345"):
        store.get_ticket(session, 12345)


def test_save_passages_and_draft_only_once(database_url: str) -> None:
    """A repeated step stores nothing: passages and a draft revision are written once."""
    with session_scope() as session:
        ticket, _ = store.create_ticket(session, text="where is my order")
        assert store.save_passages(session, ticket, _passages(3))
        assert not store.save_passages(session, ticket, _passages(2))
        draft = store.save_draft(session, ticket, revision=1, text="reply", kind="generated")
        assert draft is not None
        assert store.save_draft(session, ticket, revision=1, text="again", kind="generated") is None
        assert ticket.status == "drafted"
    with session_scope() as session:
        assert [p.rank for p in store.get_passages(session, ticket.id)] == [1, 2, 3]
        latest = store.latest_draft(session, ticket.id)
        assert latest is not None
        assert latest.text == "reply"


def test_add_feedback_edit_answers_the_ticket(database_url: str) -> None:
    """An edited draft becomes the ticket's resolution and an agent message."""
    with session_scope() as session:
        ticket, _ = store.create_ticket(session, text="refund please")
        draft = store.save_draft(session, ticket, revision=1, text="draft", kind="generated")
        assert draft is not None
        store.add_feedback(session, draft, action="edit", final_text="Refund sent.", agent="amy")
    with session_scope() as session:
        answered = store.list_resolved_tickets(session)
        assert [(t.id, t.resolution, t.status) for t in answered] == [
            (ticket.id, "Refund sent.", "answered")
        ]
        assert [m.author for m in answered[0].messages] == ["customer", "agent"]
        rows = store.list_feedback(session)
        assert [(f.action, f.agent) for f, _, _ in rows] == [("edit", "amy")]


def test_add_feedback_reject_leaves_the_ticket_open(database_url: str) -> None:
    """A rejected draft does not answer the ticket."""
    with session_scope() as session:
        ticket, _ = store.create_ticket(session, text="x")
        draft = store.save_draft(session, ticket, revision=1, text="bad", kind="generated")
        assert draft is not None
        store.add_feedback(session, draft, action="reject", reason="wrong intent")
        assert ticket.resolution is None
        assert ticket.status == "drafted"


def test_add_articles_skips_duplicates_in_batch_and_database(database_url: str) -> None:
    """The same body and intent is stored once, whitespace and case differences aside."""
    records = [
        store.ArticleRecord(body="Reset it in Settings.", source="api", intent="reset"),
        store.ArticleRecord(body="reset it in   settings.", source="api", intent="reset"),
        store.ArticleRecord(body="Reset it in Settings.", source="api", intent="other"),
    ]
    with session_scope() as session:
        added, skipped = store.add_articles(session, records)
        assert (len(added), skipped) == (2, 1)
    with session_scope() as session:
        added_again, skipped_again = store.add_articles(session, records[:1])
        assert (added_again, skipped_again) == ([], 1)
        assert len(store.list_articles(session)) == 2


def test_list_tickets_filters_and_counts(database_url: str) -> None:
    """Queue filters select by status, intent, human queue and confidence."""
    with session_scope() as session:
        for text, intent, confidence, human in [
            ("a", "cancel_order", 0.95, False),
            ("b", "cancel_order", 0.40, True),
            ("c", None, 0.20, True),
        ]:
            ticket, _ = store.create_ticket(session, text=text)
            store.record_triage(
                session,
                ticket,
                intent=intent,
                confidence=confidence,
                is_out_of_scope=intent is None,
                needs_human=human,
                model="support-intent@1",
            )
    with session_scope() as session:
        human = store.TicketFilters(needs_human=True)
        assert [t.text for t in store.list_tickets(session, human)] == ["c", "b"]
        confident = store.TicketFilters(intent="cancel_order", min_confidence=0.5)
        assert [t.text for t in store.list_tickets(session, confident)] == ["a"]
        assert store.count_tickets(session, store.TicketFilters(is_out_of_scope=True)) == 1
        assert store.count_tickets(session, store.TicketFilters(status="triaged")) == 3
