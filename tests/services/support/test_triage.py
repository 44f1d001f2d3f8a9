"""Triage decisions: out of scope, low confidence and a missing model go to humans."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from services.support.triage import classify_texts
from shared.inference import Prediction
from shared.settings import reset_settings


class _StubClassifier:
    """Returns fixed predictions, standing in for a registered classifier."""

    reference = "support-intent@7"

    def __init__(self, predictions: Sequence[Prediction]) -> None:
        self.predictions = list(predictions)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self.predictions[: len(texts)]


def test_classify_texts_routes_by_confidence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Confident tickets stay with the bot; out-of-scope and unsure ones go to the human queue."""
    monkeypatch.setenv("DIPTYCH_SUPPORT__REVIEW_THRESHOLD", "0.7")
    reset_settings()
    stub = _StubClassifier(
        [
            Prediction(label="cancel_order", score=0.95),
            Prediction(label="get_refund", score=0.65),
            Prediction(label="track_order", score=0.30, out_of_scope=True),
            Prediction(label=None, score=None, error="empty text"),
        ]
    )
    results = classify_texts(["a", "b", "c", "d"], classifier=stub)  # type: ignore[arg-type]
    assert [(r.intent, r.needs_human, r.is_out_of_scope) for r in results] == [
        ("cancel_order", False, False),
        ("get_refund", True, False),
        (None, True, True),
        (None, True, False),
    ]
    assert results[2].top_intent == "track_order"
    assert {r.model for r in results} == {"support-intent@7"}


def test_classify_texts_without_a_model_sends_everything_to_humans(database_url: str) -> None:
    """With no production `support-intent`, tickets still flow, to the human queue."""
    results = classify_texts(["where is my order"])
    assert [(r.intent, r.needs_human, r.model) for r in results] == [(None, True, "")]
