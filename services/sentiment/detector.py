"""Rule evaluation over bucket series: a pure state machine shared by the live and offline paths.

Each rule is evaluated per entity on every closed bucket that contains
mentions, and on the first empty bucket after an alert's last true bucket
(where its condition is false). A condition that holds starts a pending
episode, which fires after `Rule.for_buckets` consecutive true buckets; the
first false bucket resolves a firing episode or ends a pending one as
``inactive``. Episode times are bucket ends in published time, so the same
items give the same episodes however the evaluation is split into runs.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.sentiment.rules import Rule, RuleSet
from services.sentiment.store import BucketCounts
from services.sentiment.timeutil import bucket_start, parse_granularity

__all__ = [
    "Episode",
    "Evaluation",
    "MentionRecord",
    "build_series",
    "evaluate_bucket",
    "fingerprint",
    "recompute_episodes",
    "run_rule",
]

Series = Mapping[dt.datetime, BucketCounts]


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one rule on one bucket."""

    holds: bool
    value: float
    baseline_mean: float
    baseline_spread: float
    deviation: float
    volume: int


@dataclass
class Episode:
    """An alert episode in the state machine; `id` is its row id once stored."""

    rule: str
    entity: str
    severity: str
    state: str
    started_at: dt.datetime
    last_true_start: dt.datetime
    value: float
    consecutive: int = 1
    fired_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    @property
    def key(self) -> tuple[str, str, dt.datetime]:
        """Rule, entity and start: the identity of the episode."""
        return (self.rule, self.entity, self.started_at)

    @property
    def is_active(self) -> bool:
        """Whether the episode is pending or firing."""
        return self.state in ("pending", "firing")


def fingerprint(rule: str, entity: str) -> str:
    """Return the stable identity of a rule and entity pair (16 hex digits of SHA-256)."""
    return hashlib.sha256(f"{rule}\x00{entity}".encode()).hexdigest()[:16]


def evaluate_bucket(
    rule: Rule, series: Series, keys: list[dt.datetime], start: dt.datetime
) -> Evaluation:
    """Evaluate `rule` on the bucket at `start` against the buckets before it.

    Args:
        rule: The rule.
        series: The entity's non-empty buckets by start.
        keys: The sorted starts of `series`.
        start: The bucket to evaluate; it may be empty.
    """
    width = dt.timedelta(seconds=parse_granularity(rule.bucket))
    current = series.get(start) or BucketCounts()
    low = bisect.bisect_left(keys, start - width * rule.baseline_buckets)
    high = bisect.bisect_left(keys, start)
    window = [series[key] for key in keys[low:high]]
    value = _figure(rule, current)
    if len(window) < rule.min_baseline_buckets or current.volume < rule.min_volume:
        return Evaluation(False, value, math.nan, math.nan, math.nan, current.volume)
    if rule.kind == "volume_spike":
        # Empty buckets count as zero mentions in the volume baseline.
        values = [float(counts.volume) for counts in window]
        values += [0.0] * (rule.baseline_buckets - len(values))
    else:
        values = [_figure(rule, counts) for counts in window]
    mean = sum(values) / len(values)
    spread = math.sqrt(max(sum(v * v for v in values) / len(values) - mean * mean, 0.0))
    scale = max(spread, rule.min_spread)
    deviation = (mean - value) / scale if rule.kind == "score_drop" else (value - mean) / scale
    return Evaluation(
        deviation >= rule.threshold_sd, value, mean, spread, deviation, current.volume
    )


def _figure(rule: Rule, counts: BucketCounts) -> float:
    if rule.kind == "negative_share_surge":
        return counts.negative_share
    if rule.kind == "volume_spike":
        return float(counts.volume)
    return counts.mean_score


def run_rule(
    rule: Rule,
    series_by_entity: Mapping[str, Series],
    *,
    after: dt.datetime | None,
    until: dt.datetime,
    active: dict[str, Episode],
) -> list[Episode]:
    """Advance `rule` over the buckets that end in (`after`, `until`].

    Args:
        rule: The rule.
        series_by_entity: Non-empty buckets per entity, including the baseline
            window before `after`.
        after: End of the previous run, or None for the first run.
        until: The watermark: buckets ending later are not complete yet.
        active: Pending and firing episodes by entity; updated in place.

    Returns:
        Every episode created or changed, in the order of their last change.
    """
    width = dt.timedelta(seconds=parse_granularity(rule.bucket))
    changed: dict[tuple[str, str, dt.datetime], Episode] = {}
    for entity in sorted(set(series_by_entity) | set(active)):
        series = series_by_entity.get(entity, {})
        keys = sorted(series)
        for start in _slots_to_evaluate(keys, active.get(entity), width, after, until):
            evaluation = evaluate_bucket(rule, series, keys, start)
            episode = _advance(rule, entity, active, start + width, start, evaluation)
            if episode is not None:
                changed[episode.key] = episode
    return list(changed.values())


def _slots_to_evaluate(
    keys: list[dt.datetime],
    episode: Episode | None,
    width: dt.timedelta,
    after: dt.datetime | None,
    until: dt.datetime,
) -> list[dt.datetime]:
    def in_range(start: dt.datetime) -> bool:
        end = start + width
        return (after is None or end > after) and end <= until

    slots = {key for key in keys if in_range(key)}
    # After each true bucket the next bucket is evaluated even when empty, so
    # a gap in the data ends the episode. Adding the slot after every data
    # slot covers an episode that starts within this run too.
    follow_ups = {key + width for key in slots}
    if episode is not None:
        follow_ups.add(episode.last_true_start + width)
    slots |= {slot for slot in follow_ups if in_range(slot)}
    return sorted(slots)


def _advance(
    rule: Rule,
    entity: str,
    active: dict[str, Episode],
    end: dt.datetime,
    start: dt.datetime,
    evaluation: Evaluation,
) -> Episode | None:
    episode = active.get(entity)
    if not evaluation.holds:
        if episode is None:
            return None
        episode.state = "resolved" if episode.state == "firing" else "inactive"
        episode.resolved_at = end
        del active[entity]
        return episode
    details = {
        "bucket": rule.bucket,
        "bucket_start": start.isoformat(),
        "baseline_mean": evaluation.baseline_mean,
        "baseline_spread": evaluation.baseline_spread,
        "deviation": evaluation.deviation,
        "volume": evaluation.volume,
    }
    if episode is None or start != episode.last_true_start + dt.timedelta(
        seconds=parse_granularity(rule.bucket)
    ):
        episode = Episode(
            rule=rule.name,
            entity=entity,
            severity=rule.severity,
            state="pending",
            started_at=end,
            last_true_start=start,
            value=evaluation.value,
            details=details,
        )
        active[entity] = episode
    else:
        episode.consecutive += 1
        episode.last_true_start = start
        episode.value = evaluation.value
        episode.details = details
    if episode.state == "pending" and episode.consecutive >= rule.for_buckets:
        episode.state = "firing"
        episode.fired_at = end
    return episode


@dataclass(frozen=True)
class MentionRecord:
    """One entity's share of a stored item, as the offline recomputation reads it."""

    published_at: dt.datetime
    entity: str
    label: str
    score: float


def build_series(
    mentions: Iterable[MentionRecord], granularity: str
) -> dict[str, dict[dt.datetime, BucketCounts]]:
    """Aggregate mentions into buckets per entity, the way the store's upserts do."""
    series: dict[str, dict[dt.datetime, BucketCounts]] = defaultdict(dict)
    for mention in mentions:
        start = bucket_start(mention.published_at, granularity)
        counts = series[mention.entity].setdefault(start, BucketCounts())
        counts.add(mention.label, mention.score)
    return dict(series)


def recompute_episodes(
    rules: RuleSet, mentions: Iterable[MentionRecord], *, until: dt.datetime
) -> list[Episode]:
    """Recompute every alert episode from scratch, in one run per rule.

    Args:
        rules: The rules.
        mentions: One record per stored item and entity.
        until: The watermark the live evaluation reached.

    Returns:
        All episodes, sorted by rule, entity and start.
    """
    records = list(mentions)
    episodes: list[Episode] = []
    for rule in rules.rules:
        series = build_series(records, rule.bucket)
        active: dict[str, Episode] = {}
        created: dict[tuple[str, str, dt.datetime], Episode] = {}
        for entity in sorted(series):
            for episode in run_rule(
                rule, {entity: series[entity]}, after=None, until=until, active=active
            ):
                created[episode.key] = episode
        episodes += created.values()
    return sorted(episodes, key=lambda episode: episode.key)
