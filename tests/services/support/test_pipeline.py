"""The support pipeline end to end: intake, triage, retrieval, drafting, feedback, export."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import select, text

from services.support import store
from services.support.drafting import DraftResult
from services.support.errors import EmptyDraftError, TicketAnsweredError
from services.support.feedback import export_feedback, record_feedback
from services.support.kb import import_articles
from services.support.models import PiiReveal
from services.support.pipeline import process_tickets, save_streamed_draft, store_ticket
from services.support.reveal import reveal_ticket
from services.support.schemas import FeedbackCreate, TicketCreate
from services.support.store import ArticleRecord
from shared.errors import GenerationError
from shared.generation import TextGenerator
from shared.storage import get_engine, session_scope
from tests.services.support.conftest import SupportModels

EMAIL = "li.wei@example.com"
PHONE = "13812345678"
PII_TEXT = f"I want to cancel my order, write to {EMAIL} or call {PHONE}. 请尽快取消订单！"


def _submit(text: str, **fields: str) -> int:
    return store_ticket(TicketCreate(text=text, **fields)).ticket_id


def test_store_ticket_keeps_no_pii_in_the_clear(support_env: SupportModels) -> None:
    """The database contains placeholders only; the reveal restores the text and is recorded."""
    ticket_id = _submit(PII_TEXT, subject=f"Order for {EMAIL}")
    with get_engine().connect() as connection:
        dump = " ".join(
            str(value)
            for row in connection.execute(text("SELECT * FROM support_tickets"))
            for value in row
        )
        dump += " ".join(
            str(row[0]) for row in connection.execute(text("SELECT text FROM support_messages"))
        )
    assert EMAIL not in dump
    assert PHONE not in dump
    assert "[EMAIL_1]" in dump
    assert "[PHONE_1]" in dump

    revealed = reveal_ticket(ticket_id, agent="amy")
    assert revealed.text == PII_TEXT
    assert revealed.subject == f"Order for {EMAIL}"
    with session_scope() as session:
        assert [r.agent for r in session.scalars(select(PiiReveal))] == ["amy"]


def test_process_tickets_drafts_each_ticket_exactly_once(
    support_env: SupportModels, knowledge_base: int
) -> None:
    """Each ticket is classified, gets ranked passages and one draft; a rerun adds nothing."""
    test_examples = support_env.splits.test[:6]
    ids = [_submit(example.text) for example in test_examples]
    process_tickets(ids)
    process_tickets(ids)
    with session_scope() as session:
        correct = 0
        for ticket_id, example in zip(ids, test_examples, strict=True):
            ticket = store.get_ticket(session, ticket_id)
            passages = store.get_passages(session, ticket_id)
            assert ticket.status == "drafted"
            assert ticket.intent_model == "support-intent@1"
            assert [p.rank for p in passages] == [1, 2, 3, 4, 5]
            assert store.count_drafts(session, ticket_id) == 1
            correct += ticket.intent == example.label
        assert correct >= 5
    assert knowledge_base > 50


def test_drafter_prompt_and_logs_hold_no_pii(
    support_env: SupportModels,
    knowledge_base: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The drafter sees the masked ticket and nothing in the logs shows the customer's PII."""
    prompts: list[str] = []
    original = TextGenerator.generate

    def spy(self: TextGenerator, batch: list[str], **options: object) -> object:
        prompts.extend(batch)
        return original(self, batch, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(TextGenerator, "generate", spy)
    caplog.set_level(logging.DEBUG)
    ticket_id = _submit(PII_TEXT)
    process_tickets([ticket_id])
    assert len(prompts) == 1
    assert "[EMAIL_1]" in prompts[0]
    assert "[PHONE_1]" in prompts[0]
    assert EMAIL not in prompts[0]
    assert PHONE not in prompts[0]
    assert EMAIL not in caplog.text
    assert PHONE not in caplog.text


def test_draft_falls_back_to_the_best_passage_when_the_drafter_fails(
    support_env: SupportModels, knowledge_base: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drafter error never loses the ticket: it gets the best passage, marked as a fallback."""

    def broken(self: TextGenerator, *args: object, **kwargs: object) -> object:
        raise GenerationError("out of memory")

    monkeypatch.setattr(TextGenerator, "generate", broken)
    monkeypatch.setenv(
        "DIPTYCH_SUPPORT__SLOT_VALUES", json.dumps({"Online Company Portal Info": "shop.example"})
    )
    from shared.settings import reset_settings

    reset_settings()
    ticket_id = _submit("How do I cancel order ORD-55821?")
    process_tickets([ticket_id])
    with session_scope() as session:
        draft = store.latest_draft(session, ticket_id)
        best = store.get_passages(session, ticket_id)[0]
        assert draft is not None
        assert draft.kind == "fallback"
        assert "out of memory" in (draft.fallback_reason or "")
        assert draft.citations == [1]
        assert "{{Online Company Portal Info}}" not in draft.text
        if "{{Order Number}}" in best.text:
            assert "ORD-55821" in draft.text


def test_ungrounded_draft_is_replaced_by_the_fallback(
    support_env: SupportModels, knowledge_base: int
) -> None:
    """The random tiny drafter writes noise; the grounding check rejects it."""
    ticket_id = _submit(support_env.splits.test[0].text)
    process_tickets([ticket_id])
    with session_scope() as session:
        draft = store.latest_draft(session, ticket_id)
        assert draft is not None
        assert draft.kind == "fallback"
        assert draft.fallback_reason
        assert (
            draft.text == store.get_passages(session, ticket_id)[0].text or "{{" not in draft.text
        )


def test_ticket_without_passages_goes_to_the_human_queue(support_env: SupportModels) -> None:
    """No knowledge base, no passage: the draft states it and the ticket waits for an agent."""
    ticket_id = _submit("Where is order 12345? It is two weeks late.")
    process_tickets([ticket_id])
    with session_scope() as session:
        ticket = store.get_ticket(session, ticket_id)
        draft = store.latest_draft(session, ticket_id)
        assert store.get_passages(session, ticket_id) == []
        assert draft is not None
        assert draft.kind == "no_answer"
        assert draft.text == ""
        assert draft.citations == []
        assert draft.grounding is None
        assert "no passage was retrieved" in (draft.fallback_reason or "")
        assert ticket.needs_human is True
        assert ticket.status == "drafted"


@pytest.fixture
def order_article(support_env: SupportModels) -> str:
    """A knowledge base of one article with the `{{Order Number}}` slot."""
    body = (
        "We have cancelled order {{Order Number}} as you asked. The refund reaches your "
        "card within five business days."
    )
    import_articles([ArticleRecord(body=body, source="markdown", title="Cancel an order")])
    return body


@pytest.mark.parametrize(
    ("ticket", "order_number"),
    [
        ("Please cancel my order #A-99812, I ordered the wrong size.", "A-99812"),
        ("请帮我取消订单，订单号 778899，谢谢", "778899"),
    ],
)
def test_fallback_fills_the_order_number_from_the_ticket(
    order_article: str, ticket: str, order_number: str
) -> None:
    """The random drafter fails the grounding check; its fallback names the customer's order."""
    ticket_id = _submit(ticket)
    process_tickets([ticket_id])
    with session_scope() as session:
        draft = store.latest_draft(session, ticket_id)
        assert draft is not None
        assert draft.kind == "fallback"
        assert draft.text == order_article.replace("{{Order Number}}", order_number)
        assert draft.details["unfilled_slots"] == []
        assert set(draft.details) <= {"unfilled_slots", "rejected_text", "rejected_model"}


def test_draft_whose_prompt_holds_no_passage_falls_back(
    order_article: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ticket so long that no passage fits the prompt gets the fallback, not a 0.0 draft."""
    monkeypatch.setenv("DIPTYCH_SUPPORT__MAX_PROMPT_TOKENS", "200")
    from shared.settings import reset_settings

    reset_settings()
    filler = " ".join(["The parcel has not arrived and nobody answers my mails."] * 20)
    ticket_id = _submit(f"Cancel order 31337 please. {filler}")
    process_tickets([ticket_id])
    with session_scope() as session:
        draft = store.latest_draft(session, ticket_id)
        assert len(store.get_passages(session, ticket_id)) == 1
        assert draft is not None
        assert draft.kind == "fallback"
        assert draft.fallback_reason == "no passage in the prompt to check the draft against"
        assert draft.text == order_article.replace("{{Order Number}}", "31337")


def test_no_answer_draft_cannot_be_accepted(support_env: SupportModels) -> None:
    """An empty draft is never sent: the agent writes the reply and sends it as an edit."""
    ticket_id = _submit("Where is order 12345?")
    process_tickets([ticket_id])
    with pytest.raises(EmptyDraftError, match="action 'edit'"):
        record_feedback(ticket_id, FeedbackCreate(action="accept"), agent="amy")
    record_feedback(
        ticket_id, FeedbackCreate(action="edit", final_text="It ships Friday."), agent="amy"
    )
    with session_scope() as session:
        ticket = store.get_ticket(session, ticket_id)
        assert ticket.status == "answered"
        assert ticket.resolution == "It ships Friday."


def test_late_streamed_draft_is_not_stored(support_env: SupportModels) -> None:
    """A draft that finishes after the ticket was answered is dropped, not stored."""
    ticket_id = _submit("Where is order 12345?")
    process_tickets([ticket_id])
    record_feedback(ticket_id, FeedbackCreate(action="edit", final_text="Sent."), agent="amy")
    late = DraftResult(
        text="Your order ships Friday.", kind="generated", model="m", citations=[1], grounding=0.9
    )
    with pytest.raises(TicketAnsweredError, match="was answered while the draft was written"):
        save_streamed_draft(ticket_id, late)
    with session_scope() as session:
        assert store.count_drafts(session, ticket_id) == 1


def test_export_feedback_writes_masked_training_data(
    support_env: SupportModels, knowledge_base: int, tmp_path: Path
) -> None:
    """Edited replies and corrected intents are exported, with PII typed by agents masked."""
    first, second = _submit(PII_TEXT), _submit("where is my parcel?")
    process_tickets([first, second])
    record_feedback(
        first,
        FeedbackCreate(action="edit", final_text=f"Done, we wrote to {EMAIL}."),
        agent="amy",
    )
    record_feedback(
        second,
        FeedbackCreate(action="reject", reason="wrong intent", corrected_intent="track_order"),
        agent="amy",
    )
    result = export_feedback(tmp_path / "out")
    intents = [json.loads(line) for line in result.intents_path.read_text().splitlines()]
    replies = [json.loads(line) for line in result.replies_path.read_text().splitlines()]
    assert (result.n_intents, result.n_replies) == (2, 1)
    assert intents[1] == {"text": "where is my parcel?", "label": "track_order"}
    assert replies[0]["response"] == "Done, we wrote to [EMAIL_1]."
    exported = result.intents_path.read_text() + result.replies_path.read_text()
    assert EMAIL not in exported
    assert PHONE not in exported


def test_answered_ticket_is_retrieved_for_the_next_similar_one(
    support_env: SupportModels, knowledge_base: int
) -> None:
    """An accepted reply joins the resolved-ticket index without a rebuild."""
    first = _submit("My package never arrived, where is order 777?")
    process_tickets([first])
    record_feedback(
        first, FeedbackCreate(action="edit", final_text="It ships Friday."), agent="amy"
    )
    second = _submit("My package never arrived, where is order 778?")
    process_tickets([second])
    with session_scope() as session:
        kinds = [(p.kind, p.source_id) for p in store.get_passages(session, second)]
    assert ("ticket", first) in kinds
