"""Database reads and writes of the sentiment service. Routes and steps go through here."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from services.sentiment.gazetteer import EntityMatch
from services.sentiment.models import Bucket, Mention, SentimentAlert, SentimentItem, Silence
from services.sentiment.schemas import ItemCreate
from services.sentiment.scoring import EntityScore, ScoredItem
from services.sentiment.timeutil import GRANULARITIES, as_utc, bucket_start

__all__ = [
    "BucketCounts",
    "ScoredRecord",
    "count_items",
    "get_alert",
    "list_alerts",
    "list_bucket_series",
    "list_items",
    "list_silences",
    "load_bucket_window",
    "store_scored_items",
]


@dataclass(frozen=True)
class ScoredRecord:
    """An item with its scores and linked mentions, ready to store."""

    item: ItemCreate
    scored: ScoredItem
    mentions: Sequence[tuple[EntityMatch, EntityScore]] = ()
    model: str = ""


@dataclass
class BucketCounts:
    """Label counts and score sum of one entity bucket."""

    positive: int = 0
    neutral: int = 0
    negative: int = 0
    score_sum: float = 0.0

    @property
    def volume(self) -> int:
        """Mentions in the bucket."""
        return self.positive + self.neutral + self.negative

    @property
    def negative_share(self) -> float:
        """Share of negative mentions; 0 for an empty bucket."""
        return self.negative / self.volume if self.volume else 0.0

    @property
    def mean_score(self) -> float:
        """Mean signed score; 0 for an empty bucket."""
        return self.score_sum / self.volume if self.volume else 0.0

    def add(self, label: str, score: float) -> None:
        """Count one mention."""
        setattr(self, label, getattr(self, label) + 1)
        self.score_sum += score


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(
        f"database {dialect!r} is not supported by the sentiment store; use PostgreSQL or SQLite"
    )


def store_scored_items(session: Session, records: Sequence[ScoredRecord]) -> list[str]:
    """Insert new items with their mentions and add them to their entity buckets.

    Items whose external id is already stored are skipped, and only the items
    this call inserts are counted in buckets, so storing a batch twice changes
    nothing. Rows are written in sorted key order, which keeps two workers
    that store overlapping batches from deadlocking.

    Returns:
        The external ids that were new, in sorted order.
    """
    unique: dict[str, ScoredRecord] = {}
    for record in records:
        if record.scored.error is None:
            unique.setdefault(record.item.id, record)
    if not unique:
        return []
    ordered = [unique[key] for key in sorted(unique)]
    statement: Insert = _insert(session, SentimentItem).values([_item_values(r) for r in ordered])
    statement = statement.on_conflict_do_nothing(index_elements=["external_id"])  # type: ignore[attr-defined]
    returned = session.execute(
        statement.returning(SentimentItem.external_id, SentimentItem.id)
    ).all()
    inserted = {str(external_id): int(item_id) for external_id, item_id in returned}
    if not inserted:
        return []
    new_records = [record for record in ordered if record.item.id in inserted]
    mention_rows = [
        _mention_values(inserted[record.item.id], match, score)
        for record in new_records
        for match, score in record.mentions
    ]
    if mention_rows:
        session.execute(_insert(session, Mention).values(mention_rows).on_conflict_do_nothing())
    _add_to_buckets(session, new_records)
    return sorted(inserted)


def _item_values(record: ScoredRecord) -> dict[str, Any]:
    scored = record.scored
    return {
        "external_id": record.item.id,
        "source": record.item.source,
        "published_at": record.item.published_at,
        "text": record.item.text,
        "label": scored.label,
        "score": scored.score,
        "positive": scored.positive,
        "neutral": scored.neutral,
        "negative": scored.negative,
        "truncated": scored.truncated,
        "model": record.model,
    }


def _mention_values(item_id: int, match: EntityMatch, score: EntityScore) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "entity": match.entity,
        "surface": match.surface[:300],
        "start": match.start,
        "end": match.end,
        "kind": match.kind,
        "label": score.label,
        "score": score.score,
    }


def entity_labels(record: ScoredRecord) -> dict[str, EntityScore]:
    """Return the sentiment each entity of `record` counts with: that of its first mention."""
    labels: dict[str, EntityScore] = {}
    for match, score in record.mentions:
        labels.setdefault(match.entity, score)
    return labels


def _add_to_buckets(session: Session, records: Sequence[ScoredRecord]) -> None:
    deltas: dict[tuple[str, str, dt.datetime], BucketCounts] = defaultdict(BucketCounts)
    for record in records:
        for entity, score in entity_labels(record).items():
            for granularity in GRANULARITIES:
                start = bucket_start(record.item.published_at, granularity)
                deltas[(entity, granularity, start)].add(score.label, score.score)
    for (entity, granularity, start), counts in sorted(deltas.items()):
        statement = _insert(session, Bucket).values(
            entity=entity,
            granularity=granularity,
            bucket_start=start,
            n_positive=counts.positive,
            n_neutral=counts.neutral,
            n_negative=counts.negative,
            score_sum=counts.score_sum,
        )
        excluded = statement.excluded
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["entity", "granularity", "bucket_start"],
                set_={
                    "n_positive": Bucket.n_positive + excluded.n_positive,
                    "n_neutral": Bucket.n_neutral + excluded.n_neutral,
                    "n_negative": Bucket.n_negative + excluded.n_negative,
                    "score_sum": Bucket.score_sum + excluded.score_sum,
                },
            )
        )


def load_bucket_window(
    session: Session,
    *,
    granularity: str,
    start: dt.datetime | None,
    end: dt.datetime,
    entity: str | None = None,
) -> dict[str, dict[dt.datetime, BucketCounts]]:
    """Return bucket counts with `start <= bucket_start < end`, per entity and start."""
    query = select(Bucket).where(Bucket.granularity == granularity, Bucket.bucket_start < end)
    if start is not None:
        query = query.where(Bucket.bucket_start >= start)
    if entity is not None:
        query = query.where(Bucket.entity == entity)
    series: dict[str, dict[dt.datetime, BucketCounts]] = defaultdict(dict)
    for row in session.scalars(query):
        series[row.entity][as_utc(row.bucket_start)] = BucketCounts(
            row.n_positive, row.n_neutral, row.n_negative, row.score_sum
        )
    return dict(series)


def list_bucket_series(
    session: Session, *, entity: str, granularity: str, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, BucketCounts]]:
    """Return one entity's non-empty buckets in [start, end), oldest first."""
    window = load_bucket_window(
        session, granularity=granularity, start=start, end=end, entity=entity
    )
    return sorted(window.get(entity, {}).items())


def count_items(session: Session, *, entity: str | None = None) -> int:
    """Return the number of stored items, or of those that mention `entity`."""
    if entity is None:
        return int(session.scalar(select(func.count()).select_from(SentimentItem)) or 0)
    query = select(func.count(func.distinct(Mention.item_id))).where(Mention.entity == entity)
    return int(session.scalar(query) or 0)


def list_items(
    session: Session,
    *,
    entity: str | None = None,
    label: str | None = None,
    order: str = "recent",
    limit: int = 50,
    offset: int = 0,
    published_after: dt.datetime | None = None,
    published_before: dt.datetime | None = None,
) -> list[SentimentItem]:
    """Return items, newest first or most negative first (`order="negative"`)."""
    query = select(SentimentItem).options(selectinload(SentimentItem.mentions))
    if entity is not None:
        query = query.where(
            SentimentItem.id.in_(select(Mention.item_id).where(Mention.entity == entity))
        )
    if label is not None:
        query = query.where(SentimentItem.label == label)
    if published_after is not None:
        query = query.where(SentimentItem.published_at >= published_after)
    if published_before is not None:
        query = query.where(SentimentItem.published_at < published_before)
    if order == "negative":
        query = query.order_by(SentimentItem.score, SentimentItem.id)
    else:
        query = query.order_by(SentimentItem.published_at.desc(), SentimentItem.id.desc())
    return list(session.scalars(query.offset(offset).limit(limit)))


def list_alerts(
    session: Session,
    *,
    states: Sequence[str] | None = None,
    entity: str | None = None,
    limit: int = 100,
) -> list[SentimentAlert]:
    """Return alert episodes, newest first."""
    query = select(SentimentAlert)
    if states:
        query = query.where(SentimentAlert.state.in_(list(states)))
    if entity is not None:
        query = query.where(SentimentAlert.entity == entity)
    query = query.order_by(SentimentAlert.started_at.desc(), SentimentAlert.id.desc()).limit(limit)
    return list(session.scalars(query))


def get_alert(session: Session, alert_id: int) -> SentimentAlert | None:
    """Return one alert episode, or None."""
    return session.get(SentimentAlert, alert_id)


def list_silences(session: Session, *, now: dt.datetime, active_only: bool = True) -> list[Silence]:
    """Return silences, the active ones (started, not yet ended) by default."""
    query = select(Silence).order_by(Silence.ends_at.desc())
    if active_only:
        query = query.where(Silence.starts_at <= now, Silence.ends_at > now)
    return list(session.scalars(query))


__all__ += ["entity_labels"]
