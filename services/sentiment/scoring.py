"""Sentiment scoring: a label, a signed score, and per-entity scores for mixed items.

The classifier is the registry's production sentiment model, loaded once per
process. The signed score is P(positive) - P(negative), in [-1, 1].

An item that names several entities in different clauses ("X beats
estimates, Y cuts jobs") gives each entity the sentiment of its own clause.
When all its entities share one clause, they get the item's sentiment.
Clauses end at ``; , :`` (and their full-width forms) and before ``but``,
``while``, ``whereas``, ``although``, ``however`` and ``但``, ``而``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.sentiment.gazetteer import EntityMatch
from shared.inference import TextClassifier, load_text_classifier

__all__ = [
    "SENTIMENT_LABELS",
    "EntityScore",
    "ScoredItem",
    "SentimentScorer",
    "load_sentiment_scorer",
    "split_clauses",
]

logger = logging.getLogger(__name__)

SENTIMENT_LABELS = ("positive", "neutral", "negative")
_CLAUSE_BREAK = re.compile(
    r"[;,:；，：]|(?<=\s)(?=(?:but|while|whereas|although|however)\b)|(?=[但而])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class EntityScore:
    """The sentiment attributed to one mention."""

    label: str
    score: float


@dataclass(frozen=True)
class ScoredItem:
    """The sentiment of one text; `error` is set (and the rest empty) when it was not scored."""

    label: str = ""
    score: float = 0.0
    positive: float = 0.0
    neutral: float = 0.0
    negative: float = 0.0
    truncated: bool = False
    error: str | None = None


class SentimentScorer:
    """Scores texts with a three-way sentiment classifier."""

    def __init__(self, classifier: TextClassifier) -> None:
        names = {label.lower(): label for label in classifier.labels}
        missing = [label for label in SENTIMENT_LABELS if label not in names]
        if missing:
            raise ValueError(
                f"model {classifier.reference!r} has labels {classifier.labels!r}, but a "
                f"sentiment model needs {list(SENTIMENT_LABELS)!r} (any letter case); train "
                "it on phrasebank or sentfin, or point DIPTYCH_SENTIMENT__MODEL at one."
            )
        self.classifier = classifier
        self._names = names

    @property
    def reference(self) -> str:
        """The registry reference (or folder) of the model."""
        return self.classifier.reference or ""

    def score(self, texts: Sequence[str]) -> list[ScoredItem]:
        """Score each text; an empty or invalid text gets an error, not an exception."""
        results = []
        for prediction in self.classifier.predict(texts):
            if not prediction.is_ok:
                results.append(ScoredItem(error=prediction.error))
                continue
            probability = {
                label: float(prediction.distribution[self._names[label]])
                for label in SENTIMENT_LABELS
            }
            results.append(
                ScoredItem(
                    label=str(prediction.label).lower(),
                    score=probability["positive"] - probability["negative"],
                    positive=probability["positive"],
                    neutral=probability["neutral"],
                    negative=probability["negative"],
                    truncated=prediction.truncated,
                )
            )
        return results

    def score_mentions(
        self,
        texts: Sequence[str],
        matches: Sequence[Sequence[EntityMatch]],
        items: Sequence[ScoredItem],
    ) -> list[list[EntityScore]]:
        """Return one `EntityScore` per match, scoring each distinct clause once.

        Args:
            texts: The item texts.
            matches: The mentions found in each text.
            items: The item scores, used where an entity's clause is the whole item.
        """
        clause_texts: list[str] = []
        plans: list[list[int | None]] = []
        for text, found in zip(texts, matches, strict=True):
            plans.append(_plan_clauses(text, found, clause_texts))
        clause_scores = self.score(clause_texts) if clause_texts else []
        results = []
        for plan, item in zip(plans, items, strict=True):
            row = []
            for clause_index in plan:
                scored = clause_scores[clause_index] if clause_index is not None else item
                if scored.error is not None:
                    scored = item
                row.append(EntityScore(scored.label, scored.score))
            results.append(row)
        return results


def _plan_clauses(
    text: str, found: Sequence[EntityMatch], clause_texts: list[str]
) -> list[int | None]:
    located = [match for match in found if match.start >= 0]
    if len({match.entity for match in located}) < 2:
        return [None] * len(found)
    spans = split_clauses(text)
    clause_of = {match: _clause_index(spans, match.start) for match in located}
    if len(set(clause_of.values())) < 2:
        return [None] * len(found)
    plan: list[int | None] = []
    added: dict[int, int] = {}
    for match in found:
        span_index = clause_of.get(match)
        if span_index is None:
            plan.append(None)
            continue
        if span_index not in added:
            start, end = spans[span_index]
            added[span_index] = len(clause_texts)
            clause_texts.append(text[start:end].strip())
        plan.append(added[span_index])
    return plan


def _clause_index(spans: list[tuple[int, int]], offset: int) -> int:
    for index, (start, end) in enumerate(spans):
        if start <= offset < end:
            return index
    return len(spans) - 1


def split_clauses(text: str) -> list[tuple[int, int]]:
    """Split `text` into clause spans (start, end) that cover it; empty clauses are merged."""
    spans: list[tuple[int, int]] = []
    start = 0
    for found in _CLAUSE_BREAK.finditer(text):
        end = found.start()
        if text[start:end].strip(" \t,;:，；：-"):
            spans.append((start, end))
            start = end
    spans.append((start, len(text)))
    if len(spans) > 1 and not text[spans[-1][0] : spans[-1][1]].strip(" \t,;:，；：-"):
        last = spans.pop()
        spans[-1] = (spans[-1][0], last[1])
    return spans


def load_sentiment_scorer(reference: str | None = None) -> SentimentScorer:
    """Return a scorer for `reference` (default: the configured model), loaded once per process."""
    from shared.settings import get_settings

    return SentimentScorer(load_text_classifier(reference or get_settings().sentiment.model))
