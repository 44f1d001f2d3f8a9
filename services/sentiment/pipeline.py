"""Scoring pipeline: validate, score, link entities, store. Used by stream workers and the API.

One bad item never fails its batch. An entry that is not a valid item goes
straight to the dead-letter stream (no retry can fix it). An item whose
scoring or storing raises is retried alone; if it still fails it is left
pending, so its next delivery tries again until `max_deliveries`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from services.sentiment.gazetteer import Gazetteer, load_default_gazetteer
from services.sentiment.schemas import ItemCreate
from services.sentiment.scoring import SentimentScorer, load_sentiment_scorer
from services.sentiment.store import ScoredRecord, store_scored_items
from services.sentiment.stream import ITEM_FIELD, BatchOutcome, StreamEntry
from shared.storage import session_scope

__all__ = ["StoreResult", "parse_entry", "process_entries", "score_and_store", "score_items"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreResult:
    """Items stored now and items that were already stored."""

    stored: list[str]
    duplicates: list[str]


def parse_entry(entry: StreamEntry) -> ItemCreate:
    """Read the item of a stream entry.

    Raises:
        ValueError: The entry has no item field, it is not JSON, or the item is invalid.
    """
    raw = entry.fields.get(ITEM_FIELD)
    if raw is None:
        raise ValueError(f"entry has no {ITEM_FIELD!r} field; fields: {sorted(entry.fields)}")
    try:
        return ItemCreate.model_validate_json(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'item'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ValueError(f"invalid item: {details}") from None


def score_items(
    items: Sequence[ItemCreate], *, scorer: SentimentScorer, gazetteer: Gazetteer
) -> list[ScoredRecord]:
    """Score items in one batch and attach their entity mentions with per-entity scores.

    Raises:
        Exception: Whatever the model raises; `process_entries` retries items alone.
    """
    texts = [item.text for item in items]
    scored = scorer.score(texts)
    matches = [gazetteer.link_given(item.text, item.entities) for item in items]
    mention_scores = scorer.score_mentions(texts, matches, scored)
    return [
        ScoredRecord(
            item=item,
            scored=result,
            mentions=list(zip(found, scores, strict=True)),
            model=scorer.reference,
        )
        for item, result, found, scores in zip(items, scored, matches, mention_scores, strict=True)
    ]


def score_and_store(
    items: Sequence[ItemCreate],
    *,
    scorer: SentimentScorer | None = None,
    gazetteer: Gazetteer | None = None,
) -> StoreResult:
    """Score and store items in one transaction (the path without a stream)."""
    scorer = scorer or load_sentiment_scorer()
    gazetteer = gazetteer or load_default_gazetteer()
    records = score_items(items, scorer=scorer, gazetteer=gazetteer)
    with session_scope() as session:
        stored = store_scored_items(session, records)
    new = set(stored)
    return StoreResult(stored=stored, duplicates=sorted({i.id for i in items} - new))


def process_entries(
    entries: list[StreamEntry],
    *,
    scorer: SentimentScorer | None = None,
    gazetteer: Gazetteer | None = None,
) -> BatchOutcome:
    """Score and store a micro-batch of stream entries and return which to acknowledge."""
    scorer = scorer or load_sentiment_scorer()
    gazetteer = gazetteer or load_default_gazetteer()
    outcome = BatchOutcome()
    parsed: list[tuple[StreamEntry, ItemCreate]] = []
    for entry in entries:
        try:
            parsed.append((entry, parse_entry(entry)))
        except ValueError as exc:
            outcome.dead[entry.entry_id] = str(exc)
    if not parsed:
        return outcome
    records = _score_each_on_failure(parsed, scorer, gazetteer, outcome)
    _store_each_on_failure(records, outcome)
    return outcome


def _score_each_on_failure(
    parsed: list[tuple[StreamEntry, ItemCreate]],
    scorer: SentimentScorer,
    gazetteer: Gazetteer,
    outcome: BatchOutcome,
) -> list[tuple[StreamEntry, ScoredRecord]]:
    try:
        records = score_items([item for _e, item in parsed], scorer=scorer, gazetteer=gazetteer)
        scored = list(zip([e for e, _i in parsed], records, strict=True))
    except Exception as exc:
        logger.warning(
            "batch scoring failed, scoring items alone entries=%d error=%s", len(parsed), exc
        )
        scored = []
        for entry, item in parsed:
            try:
                scored.append((entry, score_items([item], scorer=scorer, gazetteer=gazetteer)[0]))
            except Exception as item_exc:
                outcome.failed[entry.entry_id] = (
                    f"scoring failed: {type(item_exc).__name__}: {item_exc}"
                )
    kept = []
    for entry, record in scored:
        if record.scored.error is not None:
            outcome.dead[entry.entry_id] = f"not scorable: {record.scored.error}"
        else:
            kept.append((entry, record))
    return kept


def _store_each_on_failure(
    records: list[tuple[StreamEntry, ScoredRecord]], outcome: BatchOutcome
) -> None:
    if not records:
        return
    try:
        with session_scope() as session:
            stored = store_scored_items(session, [record for _e, record in records])
        outcome.stored += len(stored)
        outcome.done += [entry.entry_id for entry, _r in records]
        return
    except SQLAlchemyError as exc:
        logger.warning(
            "batch store failed, storing items alone entries=%d error=%s", len(records), exc
        )
    for entry, record in records:
        try:
            with session_scope() as session:
                outcome.stored += len(store_scored_items(session, [record]))
            outcome.done.append(entry.entry_id)
        except SQLAlchemyError as exc:
            outcome.failed[entry.entry_id] = (
                f"storing failed: {type(exc).__name__}: {str(exc)[:500]}"
            )
