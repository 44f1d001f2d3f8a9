"""The grounding check, defects and the fallback reply."""

from __future__ import annotations

import pytest

from services.support.drafting import (
    DraftResult,
    _fallback,
    _find_defect,
    _judge,
    _StreamedGeneration,
    check_grounding,
)
from services.support.store import PassageRecord
from shared.retrieval import TextEmbedder, load_text_embedder
from shared.settings import reset_settings


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    """The default sentence encoder, loaded once."""
    return load_text_embedder(None)


PASSAGES = [
    PassageRecord(
        rank=1,
        kind="article",
        source_id=11,
        score=0.9,
        text="To cancel an order, open Order History and press Cancel next to the order.",
    ),
    PassageRecord(
        rank=2,
        kind="article",
        source_id=12,
        score=0.5,
        text="Refunds reach your card within five business days.",
    ),
]


def test_check_grounding_scores_supported_drafts_higher(embedder: TextEmbedder) -> None:
    """A draft that restates its passages scores above one about something else."""
    grounded = check_grounding(
        "Open Order History and press Cancel next to your order. "
        "Your refund reaches your card within five business days.",
        PASSAGES,
        embedder=embedder,
    )
    invented = check_grounding(
        "Our stores sell fresh bread every morning. The weather is sunny today.",
        PASSAGES,
        embedder=embedder,
    )
    assert grounded.score > 0.6 > invented.score
    assert grounded.cited == (1, 2)


def test_check_grounding_reads_citation_markers(embedder: TextEmbedder) -> None:
    """Explicit [n] markers count as citations when n names a passage."""
    result = check_grounding("See [2] and [9].", PASSAGES, embedder=embedder)
    assert 2 in result.cited
    assert 9 not in result.cited


@pytest.mark.parametrize(
    ("text", "finished", "defect"),
    [
        ("", True, "empty draft"),
        ("Yes. Yes. Yes. Yes. Yes. Yes.", True, "draft repeats itself"),
        ("Open the page. Press cancel.", True, None),
    ],
)
def test_find_defect(text: str, finished: bool, defect: str | None) -> None:
    """Empty and looping drafts are defects; an ordinary one is not."""
    assert _find_defect(text, finished=finished) == defect


def test_fallback_fills_known_slots_and_reports_the_rest() -> None:
    """The fallback is the best passage with the order number from the ticket filled in."""
    passages = [
        PassageRecord(
            rank=1,
            kind="article",
            source_id=3,
            score=1.0,
            text="Order {{Order Number}} can be changed on {{Website URL}}.",
        )
    ]
    result = _fallback(
        "Can I change order #A12345?", passages, reason="grounding 0.20", slot_values={}
    )
    assert result.text == "Order A12345 can be changed on {{Website URL}}."
    assert result.kind == "fallback"
    assert result.details == {"unfilled_slots": ["Website URL"]}
    assert result.fallback_reason == "grounding 0.20"


SLOTTED_PASSAGE = PassageRecord(
    rank=1,
    kind="article",
    source_id=4,
    score=0.9,
    text="We cancelled order {{Order Number}}. Questions? Call {{Customer Support Phone Number}}.",
)


@pytest.mark.parametrize(
    ("ticket", "order_number"),
    [
        ("Please cancel order 12345", "12345"),
        ("Cancel #A-99812 now", "A-99812"),
        ("order number: 778899, cancel it", "778899"),
        ("请取消订单号 12345", "12345"),
    ],
)
def test_fallback_fills_the_order_number_the_ticket_states(ticket: str, order_number: str) -> None:
    """The ticket's order number fills its slot; a slot without a value stays readable."""
    result = _fallback(ticket, [SLOTTED_PASSAGE], reason="grounding 0.10", slot_values={})
    assert result.text == (
        f"We cancelled order {order_number}. Questions? Call {{{{Customer Support Phone Number}}}}."
    )
    assert result.details == {"unfilled_slots": ["Customer Support Phone Number"]}


def test_fallback_prefers_ticket_order_number() -> None:
    """A configured value is the company's; the one in the ticket is this customer's."""
    result = _fallback(
        "Cancel order 55555",
        [SLOTTED_PASSAGE],
        reason="grounding 0.10",
        slot_values={"Order Number": "00000", "Customer Support Phone Number": "+1 555 0100"},
    )
    assert result.text == "We cancelled order 55555. Questions? Call +1 555 0100."


def test_fallback_without_passages_is_no_answer() -> None:
    """With nothing to fall back on, the rejected draft is kept out of the reply."""
    rejected = DraftResult(
        text="Your order ships tomorrow.",
        kind="fallback",
        model="tiny-drafter",
        citations=[],
        grounding=0.0,
        fallback_reason="no passage in the prompt to check the draft against",
        n_new_tokens=6,
    )
    result = _fallback(
        "Where is order 12345?",
        [],
        reason=rejected.fallback_reason,
        slot_values={},
        rejected=rejected,
    )
    assert result.kind == "no_answer"
    assert result.text == ""
    assert result.citations == []
    assert result.grounding is None
    assert "no passage was retrieved" in (result.fallback_reason or "")
    assert result.details == {
        "rejected_text": "Your order ships tomorrow.",
        "rejected_model": "tiny-drafter",
    }
    assert result.model == "tiny-drafter"
    assert result.n_new_tokens == 6


def test_fallback_keeps_the_rejected_draft_and_its_cost() -> None:
    """The retrieved article replaces the text; the rejected draft and its cost are kept."""
    rejected = DraftResult(
        text="Our stores sell fresh bread every morning.",
        kind="fallback",
        model="tiny-drafter",
        citations=[1],
        grounding=0.12,
        fallback_reason="grounding 0.12 below 0.50",
        n_new_tokens=41,
        finished=False,
        seconds=2.5,
    )
    result = _fallback(
        "cancel my order",
        PASSAGES,
        reason=rejected.fallback_reason,
        slot_values={},
        rejected=rejected,
    )
    assert result.kind == "fallback"
    assert result.text == PASSAGES[0].text
    assert result.model == ""
    assert (result.n_new_tokens, result.finished, result.seconds) == (41, False, 2.5)
    assert result.details == {
        "unfilled_slots": [],
        "rejected_text": "Our stores sell fresh bread every morning.",
        "rejected_model": "tiny-drafter",
    }


def test_fallback_after_drafter_error_records_no_cost() -> None:
    """Without a rejected draft the fallback spent no tokens and keeps no rejected text."""
    result = _fallback("cancel my order", PASSAGES, reason="drafter error: boom", slot_values={})
    assert (result.n_new_tokens, result.seconds) == (0, 0.0)
    assert "rejected_text" not in result.details


@pytest.mark.parametrize("threshold", ["0.5", "0.0"])
def test_judge_fails_a_draft_without_passages(
    embedder: TextEmbedder, monkeypatch: pytest.MonkeyPatch, threshold: str
) -> None:
    """A draft whose prompt held no passage is ungrounded, even with the check at 0."""
    monkeypatch.setenv("DIPTYCH_SUPPORT__GROUNDING_THRESHOLD", threshold)
    reset_settings()
    generation = _StreamedGeneration(
        text="Open Order History and press Cancel.", n_new_tokens=8, finished=True, seconds=0.1
    )
    judged = _judge(generation, [], ticket="cancel my order", model="m", embedder=embedder)
    assert judged.kind == "fallback"
    assert judged.fallback_reason == "no passage in the prompt to check the draft against"
    assert judged.grounding == 0.0
    assert judged.citations == []


def test_judge_passes_a_grounded_draft(embedder: TextEmbedder) -> None:
    generation = _StreamedGeneration(
        text="Open Order History and press Cancel next to the order.",
        n_new_tokens=12,
        finished=True,
        seconds=0.1,
    )
    judged = _judge(generation, PASSAGES, ticket="cancel my order", model="m", embedder=embedder)
    assert judged.kind == "generated"
    assert judged.fallback_reason is None
    assert judged.citations == [1]


def test_find_unsupported_number_flags_numbers_from_nowhere() -> None:
    """A draft may quote numbers from the ticket or its passages, not invent others."""
    from services.support.drafting import _find_unsupported_number

    ticket = "Please cancel order 4417-22."
    assert (
        _find_unsupported_number("Order 4417-22 is cancelled.", ticket=ticket, passages=PASSAGES)
        is None
    )
    reason = _find_unsupported_number(
        "Order 00123842 is cancelled.", ticket=ticket, passages=PASSAGES
    )
    assert reason is not None
    assert "00123842" in reason
