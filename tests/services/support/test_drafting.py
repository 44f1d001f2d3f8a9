"""The grounding check, defects and the fallback reply."""

from __future__ import annotations

import pytest

from services.support.drafting import _fallback, _find_defect, check_grounding
from services.support.store import PassageRecord
from shared.retrieval import TextEmbedder, load_text_embedder


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
