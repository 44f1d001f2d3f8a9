"""Analyst actions on alerts (acknowledge, silence, expire silences) and the offline check."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from services.sentiment.alerting import episodes_from_rows, load_mention_records
from services.sentiment.detector import recompute_episodes
from services.sentiment.models import RuleState, SentimentAlert, Silence
from services.sentiment.rules import RuleSet, load_rules
from services.sentiment.schemas import SilenceMatcher
from services.sentiment.timeutil import as_utc, utcnow
from shared.storage import session_scope

__all__ = [
    "OfflineComparison",
    "acknowledge_alert",
    "compare_with_offline",
    "create_silence",
    "expire_silence",
    "parse_duration",
    "parse_matcher",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def acknowledge_alert(alert_id: int, *, by: str, now: dt.datetime | None = None) -> SentimentAlert:
    """Mark an alert acknowledged, which stops its repeat notifications.

    Raises:
        LookupError: No alert has that id.
    """
    with session_scope() as session:
        alert = session.get(SentimentAlert, alert_id)
        if alert is None:
            raise LookupError(
                f"alert {alert_id!r} not found; list alerts with `diptych sentiment alerts`."
            )
        if alert.acknowledged_at is None:
            alert.acknowledged_by = by
            alert.acknowledged_at = now or utcnow()
        return alert


def parse_matcher(text: str) -> SilenceMatcher:
    """Parse ``label=value`` or ``label=~regex``.

    Raises:
        ValueError: The text has no ``=``, the label is unknown, or the regex is invalid.
    """
    name, separator, value = text.partition("=")
    if not separator:
        raise ValueError(f"invalid matcher {text!r}: write label=value or label=~regex")
    is_regex = value.startswith("~")
    value = value[1:] if is_regex else value
    matcher = SilenceMatcher(name=name.strip(), value=value.strip(), is_regex=is_regex)
    _check_regex(matcher)
    return matcher


def _check_regex(matcher: SilenceMatcher) -> None:
    if matcher.is_regex:
        try:
            re.compile(matcher.value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {matcher.value!r}: {exc}") from None


def parse_duration(text: str) -> float:
    """Parse ``90m``, ``2h`` or ``1.5d`` into seconds.

    Raises:
        ValueError: The text is not a positive number followed by s, m, h or d.
    """
    found = _DURATION.match(text)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(
            f"invalid duration {text!r}: write a positive number with s, m, h or d, e.g. 2h"
        )
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def create_silence(
    matchers: Sequence[SilenceMatcher],
    *,
    duration_s: float,
    by: str,
    comment: str = "",
    now: dt.datetime | None = None,
) -> Silence:
    """Store a silence that starts now.

    Raises:
        ValueError: No matcher, or an invalid regular expression.
    """
    if not matchers:
        raise ValueError("a silence needs at least one matcher, e.g. entity=AMZN")
    for matcher in matchers:
        _check_regex(matcher)
    now = now or utcnow()
    with session_scope() as session:
        silence = Silence(
            matchers=[matcher.model_dump() for matcher in matchers],
            starts_at=now,
            ends_at=now + dt.timedelta(seconds=duration_s),
            created_by=by,
            comment=comment,
        )
        session.add(silence)
        session.flush()
        return silence


def expire_silence(silence_id: int, *, now: dt.datetime | None = None) -> Silence:
    """End a silence now.

    Raises:
        LookupError: No silence has that id.
    """
    now = now or utcnow()
    with session_scope() as session:
        silence = session.get(Silence, silence_id)
        if silence is None:
            raise LookupError(f"silence {silence_id!r} not found")
        if as_utc(silence.ends_at) > now:
            silence.ends_at = now
        return silence


@dataclass(frozen=True)
class OfflineComparison:
    """Stored episodes against episodes recomputed from the stored scores."""

    stored: int
    recomputed: int
    only_stored: list[tuple[str, str, str, str | None, str | None]]
    only_recomputed: list[tuple[str, str, str, str | None, str | None]]

    @property
    def is_equal(self) -> bool:
        """Whether both sides hold the same episodes."""
        return not self.only_stored and not self.only_recomputed


def compare_with_offline(rules: RuleSet | None = None) -> OfflineComparison:
    """Recompute every episode from the stored scores up to where evaluation reached; compare.

    Episodes compare by rule, entity, state and their start, fire and resolve times.
    """
    rules = rules or load_rules()
    with session_scope() as session:
        states = {
            row.rule: as_utc(row.evaluated_until) for row in session.scalars(select(RuleState))
        }
        stored_rows = list(session.scalars(select(SentimentAlert)))
        mentions = load_mention_records(session)
    stored = {_signature(e) for e in episodes_from_rows(stored_rows)}
    recomputed: set[tuple[str, str, str, str | None, str | None]] = set()
    for rule in rules.rules:
        until = states.get(rule.name)
        if until is None:
            continue
        single = RuleSet.model_validate({**rules.model_dump(), "rules": [rule.model_dump()]})
        recomputed |= {_signature(e) for e in recompute_episodes(single, mentions, until=until)}
    return OfflineComparison(
        stored=len(stored),
        recomputed=len(recomputed),
        only_stored=sorted(stored - recomputed, key=str),
        only_recomputed=sorted(recomputed - stored, key=str),
    )


def _signature(episode: object) -> tuple[str, str, str, str | None, str | None]:
    from services.sentiment.detector import Episode

    assert isinstance(episode, Episode)
    return (
        episode.rule,
        episode.entity,
        f"{episode.state}@{episode.started_at.isoformat()}",
        episode.fired_at.isoformat() if episode.fired_at else None,
        episode.resolved_at.isoformat() if episode.resolved_at else None,
    )
