"""Read models for the dashboard: entities ranked by current surge, an entity's series."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.sentiment.detector import evaluate_bucket
from services.sentiment.models import Bucket, SentimentAlert
from services.sentiment.rules import Rule, RuleSet
from services.sentiment.store import load_bucket_window
from services.sentiment.timeutil import as_utc, parse_granularity

__all__ = ["EntityRank", "pick_surge_rule", "rank_entities"]


@dataclass(frozen=True)
class EntityRank:
    """One entity's latest bucket against its baseline."""

    entity: str
    surge: float
    negative_share: float
    baseline_mean: float
    baseline_spread: float
    volume: int
    bucket_start: dt.datetime
    firing: int


def pick_surge_rule(rules: RuleSet) -> Rule:
    """Return the first negative-share rule, whose bucket and baseline the ranking uses.

    Without one, a one-hour rule with a one-week baseline is used.
    """
    for rule in rules.rules:
        if rule.kind == "negative_share_surge":
            return rule
    return Rule(
        name="ranking",
        kind="negative_share_surge",
        bucket="1h",
        min_volume=1,
        threshold_sd=3.0,
        baseline_buckets=168,
        min_baseline_buckets=3,
        min_spread=0.05,
    )


def rank_entities(
    session: Session, rule: Rule, *, recent_buckets: int = 24, limit: int = 50
) -> list[EntityRank]:
    """Rank entities active in the newest `recent_buckets` buckets by their surge.

    The surge is the deviation of the entity's newest bucket's negative share
    from its baseline, in baseline standard deviations (floored by
    `Rule.min_spread`). "Newest" is relative to the newest bucket of any
    entity, so a replay of old data ranks as if it were live.
    """
    newest = session.scalar(
        select(func.max(Bucket.bucket_start)).where(Bucket.granularity == rule.bucket)
    )
    if newest is None:
        return []
    width = dt.timedelta(seconds=parse_granularity(rule.bucket))
    newest = as_utc(newest)
    recent_start = newest - width * (recent_buckets - 1)
    window = load_bucket_window(
        session,
        granularity=rule.bucket,
        start=recent_start - width * rule.baseline_buckets,
        end=newest + width,
    )
    firing = dict(
        session.execute(
            select(SentimentAlert.entity, func.count())
            .where(SentimentAlert.state == "firing")
            .group_by(SentimentAlert.entity)
        ).all()
    )
    ranks = []
    for entity, series in window.items():
        keys = sorted(series)
        if keys[-1] < recent_start:
            continue
        scored = evaluate_bucket(rule.model_copy(update={"min_volume": 1}), series, keys, keys[-1])
        ranks.append(
            EntityRank(
                entity=entity,
                surge=scored.deviation,
                negative_share=series[keys[-1]].negative_share,
                baseline_mean=scored.baseline_mean,
                baseline_spread=scored.baseline_spread,
                volume=series[keys[-1]].volume,
                bucket_start=keys[-1],
                firing=int(firing.get(entity, 0)),
            )
        )
    ranks.sort(key=lambda r: (-r.firing, -(r.surge if not math.isnan(r.surge) else -1e9)))
    return ranks[:limit]
