"""The alert lifecycle in the database: evaluate rules up to a watermark, persist episodes.

Evaluation runs in published time, up to a watermark below which every item
is stored. With a Redis Stream the watermark is the time of the newest entry
before the oldest one still pending in the consumer group. Without a stream
it is the time of the newest stored item. `SentimentSettings.allowed_lateness_s` is subtracted for
producers that send out of time order. Each rule remembers how far it got
(`RuleState`), so every bucket is evaluated once.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.sentiment.detector import Episode, MentionRecord, fingerprint, run_rule
from services.sentiment.models import Mention, RuleState, SentimentAlert, SentimentItem
from services.sentiment.rules import Rule, RuleSet
from services.sentiment.store import load_bucket_window
from services.sentiment.timeutil import as_utc, parse_granularity, utcnow

__all__ = [
    "EvaluationReport",
    "compute_watermark",
    "episodes_from_rows",
    "evaluate_rules",
    "load_mention_records",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationReport:
    """Counts of one evaluation run: episodes created, fired and resolved."""

    until: dt.datetime | None
    created: int = 0
    fired: int = 0
    resolved: int = 0


def compute_watermark(
    session: Session, *, stream_time: dt.datetime | None = None, lateness_s: float = 0.0
) -> dt.datetime | None:
    """Return the published time up to which rules may be evaluated, or None before any item.

    Args:
        session: A session.
        stream_time: The stream's done frontier (`stream.find_done_time`), when
            items arrive through a stream.
        lateness_s: Seconds subtracted for out-of-order producers.
    """
    if stream_time is None:
        newest = session.scalar(select(func.max(SentimentItem.published_at)))
        if newest is None:
            return None
        stream_time = as_utc(newest)
    return stream_time - dt.timedelta(seconds=lateness_s)


def evaluate_rules(
    session: Session, rules: RuleSet, *, until: dt.datetime, now: dt.datetime | None = None
) -> EvaluationReport:
    """Advance every rule to `until` and store the episodes that changed.

    Args:
        session: The session; the caller commits.
        rules: The rules.
        until: The watermark in published time.
        now: Wall-clock time recorded when an episode fires or resolves.
    """
    now = now or utcnow()
    created = fired = resolved = 0
    for rule in rules.rules:
        counts = _evaluate_rule(session, rule, until=until, now=now)
        created, fired, resolved = created + counts[0], fired + counts[1], resolved + counts[2]
    if created or fired or resolved:
        logger.info(
            "rules evaluated until=%s created=%d fired=%d resolved=%d",
            until.isoformat(),
            created,
            fired,
            resolved,
        )
    return EvaluationReport(until=until, created=created, fired=fired, resolved=resolved)


def _evaluate_rule(
    session: Session, rule: Rule, *, until: dt.datetime, now: dt.datetime
) -> tuple[int, int, int]:
    state = session.get(RuleState, rule.name, with_for_update=True)
    after = as_utc(state.evaluated_until) if state is not None else None
    if after is not None and after >= until:
        return (0, 0, 0)
    width = dt.timedelta(seconds=parse_granularity(rule.bucket))
    lookback = after - width * (rule.baseline_buckets + 1) if after is not None else None
    series = load_bucket_window(session, granularity=rule.bucket, start=lookback, end=until)
    rows = {
        row.entity: row
        for row in session.scalars(
            select(SentimentAlert).where(
                SentimentAlert.rule == rule.name, SentimentAlert.state.in_(("pending", "firing"))
            )
        )
    }
    active = {entity: _to_episode(row) for entity, row in rows.items()}
    changed = run_rule(rule, series, after=after, until=until, active=active)
    counts = [0, 0, 0]
    for episode in changed:
        row = session.get(SentimentAlert, episode.id) if episode.id is not None else None
        previous_state = row.state if row is not None else None
        if row is None:
            row = SentimentAlert(fingerprint=fingerprint(rule.name, episode.entity))
            session.add(row)
            counts[0] += 1
        _copy_episode(episode, row)
        if episode.state in ("firing", "resolved") and previous_state not in ("firing", "resolved"):
            row.observed_firing_at = now
            counts[1] += 1
        if episode.state in ("resolved", "inactive") and previous_state != episode.state:
            row.observed_resolved_at = now
            counts[2] += episode.state == "resolved"
    if state is None:
        session.add(RuleState(rule=rule.name, evaluated_until=until))
    else:
        state.evaluated_until = until
    session.flush()
    return (counts[0], counts[1], counts[2])


def _to_episode(row: SentimentAlert) -> Episode:
    return Episode(
        rule=row.rule,
        entity=row.entity,
        severity=row.severity,
        state=row.state,
        started_at=as_utc(row.started_at),
        last_true_start=as_utc(row.last_true_start),
        value=row.value,
        consecutive=row.consecutive,
        fired_at=as_utc(row.fired_at) if row.fired_at else None,
        resolved_at=as_utc(row.resolved_at) if row.resolved_at else None,
        details=dict(row.details or {}),
        id=row.id,
    )


def _copy_episode(episode: Episode, row: SentimentAlert) -> None:
    row.rule = episode.rule
    row.entity = episode.entity
    row.severity = episode.severity
    row.state = episode.state
    row.started_at = episode.started_at
    row.fired_at = episode.fired_at
    row.resolved_at = episode.resolved_at
    row.last_true_start = episode.last_true_start
    row.consecutive = episode.consecutive
    row.value = episode.value
    row.details = _json_safe(episode.details)


def _json_safe(details: dict[str, object]) -> dict[str, object]:
    # NaN is not valid JSON (PostgreSQL's json type rejects it).
    return {
        key: (None if isinstance(value, float) and value != value else value)
        for key, value in details.items()
    }


def episodes_from_rows(rows: list[SentimentAlert]) -> list[Episode]:
    """Return stored alert rows as episodes, sorted by rule, entity and start."""
    return sorted((_to_episode(row) for row in rows), key=lambda episode: episode.key)


def load_mention_records(session: Session) -> list[MentionRecord]:
    """Return one record per stored item and entity, scored as its first mention.

    This is what the buckets count (see `store.entity_labels`), read back from
    the stored items for the offline recomputation.
    """
    query = (
        select(
            Mention.item_id,
            SentimentItem.published_at,
            Mention.entity,
            Mention.label,
            Mention.score,
        )
        .join(SentimentItem, Mention.item_id == SentimentItem.id)
        .order_by(Mention.item_id, Mention.entity, Mention.start)
    )
    records = []
    previous: tuple[int, str] | None = None
    for item_id, published_at, entity, label, score in session.execute(query):
        if (item_id, entity) == previous:
            continue
        previous = (item_id, entity)
        records.append(MentionRecord(as_utc(published_at), entity, label, score))
    return records
