"""Triage: the intent classifier labels a ticket or sends it to the human queue."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared.errors import ModelVersionNotFoundError
from shared.inference import TextClassifier, load_text_classifier
from shared.settings import get_settings

__all__ = ["TriageResult", "classify_texts", "load_intent_classifier"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriageResult:
    """What triage decided for one ticket.

    Attributes:
        intent: Predicted intent, or ``None`` when out of scope or unscored.
        confidence: Probability of the top intent, or ``None`` when unscored.
        is_out_of_scope: The top probability fell below the model's tuned threshold.
        needs_human: The ticket goes to the human queue: out of scope, below the
            review threshold, or no classifier available.
        model: Registry reference of the classifier, empty when none served.
        top_intent: The most probable intent even when out of scope (for retrieval).
    """

    intent: str | None
    confidence: float | None
    is_out_of_scope: bool
    needs_human: bool
    model: str
    top_intent: str | None = None


def load_intent_classifier() -> TextClassifier | None:
    """Return this process's intent classifier, or ``None`` when none is in production."""
    reference = get_settings().support.intent_model
    try:
        return load_text_classifier(reference)
    except ModelVersionNotFoundError:
        logger.warning(
            "triage has no intent model reference=%s; tickets go to the human queue. "
            "Train one: diptych train classifier --dataset bitext --name support-intent "
            "--promote",
            reference,
        )
        return None


def classify_texts(
    texts: Sequence[str], *, classifier: TextClassifier | None = None
) -> list[TriageResult]:
    """Classify cleaned, masked ticket texts in one batch.

    Args:
        texts: Ticket texts as stored (cleaned and masked).
        classifier: The classifier to use; by default the production `support-intent`.

    Returns:
        One result per text, in order. A text the classifier cannot score goes to
        the human queue instead of failing the batch.
    """
    classifier = classifier or load_intent_classifier()
    if classifier is None:
        return [_unscored("") for _ in texts]
    review_threshold = get_settings().support.review_threshold
    results = []
    for prediction in classifier.predict(list(texts)):
        if not prediction.is_ok or prediction.score is None:
            results.append(_unscored(classifier.reference or ""))
            continue
        is_oos = prediction.out_of_scope
        results.append(
            TriageResult(
                intent=None if is_oos else prediction.label,
                confidence=prediction.score,
                is_out_of_scope=is_oos,
                needs_human=is_oos or prediction.score < review_threshold,
                model=classifier.reference or "",
                top_intent=prediction.label,
            )
        )
    return results


def _unscored(model: str) -> TriageResult:
    return TriageResult(
        intent=None, confidence=None, is_out_of_scope=False, needs_human=True, model=model
    )
