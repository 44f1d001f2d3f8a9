"""Rule evaluation: the alert state machine, baselines, and run-splitting invariance."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.sentiment.detector import MentionRecord, build_series, recompute_episodes, run_rule
from services.sentiment.rules import DEFAULT_RULES_FILE, Rule, RuleSet, load_rules
from shared.errors import ConfigurationError

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _rule(**overrides: object) -> Rule:
    values: dict[str, object] = {
        "name": "neg",
        "kind": "negative_share_surge",
        "bucket": "1h",
        "min_volume": 3,
        "threshold_sd": 2.0,
        "baseline_buckets": 24,
        "min_baseline_buckets": 5,
        "min_spread": 0.05,
        "for_buckets": 1,
        "severity": "critical",
    }
    values.update(overrides)
    return Rule.model_validate(values)


def _mentions(
    hour: int, *, negative: int, positive: int, entity: str = "AMZN"
) -> list[MentionRecord]:
    at = T0 + hour * HOUR + dt.timedelta(minutes=10)
    return [MentionRecord(at, entity, "negative", -0.8)] * negative + [
        MentionRecord(at, entity, "positive", 0.8)
    ] * positive


def _calm_then_surge(surge_hours: tuple[int, ...], total: int = 20) -> list[MentionRecord]:
    records: list[MentionRecord] = []
    for hour in range(total):
        if hour in surge_hours:
            records += _mentions(hour, negative=4, positive=1)
        else:
            records += _mentions(hour, negative=0, positive=4)
    return records


def test_surge_fires_then_resolves() -> None:
    """A bucket far above baseline fires at its end; the next calm bucket resolves it."""
    rules = RuleSet(rules=[_rule()])
    episodes = recompute_episodes(rules, _calm_then_surge((10,)), until=T0 + 20 * HOUR)
    assert len(episodes) == 1
    episode = episodes[0]
    assert episode.state == "resolved"
    assert episode.fired_at == T0 + 11 * HOUR
    assert episode.resolved_at == T0 + 12 * HOUR


def test_pending_until_for_buckets() -> None:
    """With for_buckets 2, one surging bucket stays pending and ends inactive."""
    rules = RuleSet(rules=[_rule(for_buckets=2)])
    single = recompute_episodes(rules, _calm_then_surge((10,)), until=T0 + 20 * HOUR)
    double = recompute_episodes(rules, _calm_then_surge((10, 11)), until=T0 + 20 * HOUR)
    assert [e.state for e in single] == ["inactive"]
    assert single[0].fired_at is None
    assert [e.state for e in double] == ["resolved"]
    assert double[0].fired_at == T0 + 12 * HOUR


def test_gap_after_surge_resolves() -> None:
    """An empty bucket after a firing one is evaluated as false and resolves the alert."""
    records = [r for r in _calm_then_surge((10,)) if r.published_at < T0 + 11 * HOUR]
    records += _mentions(15, negative=0, positive=4)
    episodes = recompute_episodes(RuleSet(rules=[_rule()]), records, until=T0 + 20 * HOUR)
    assert episodes[0].resolved_at == T0 + 12 * HOUR


def test_firing_stays_at_watermark() -> None:
    """An alert whose next bucket is not closed yet keeps firing."""
    episodes = recompute_episodes(
        RuleSet(rules=[_rule()]), _calm_then_surge((10,)), until=T0 + 11 * HOUR
    )
    assert [e.state for e in episodes] == ["firing"]


def test_no_alert_below_min_volume_or_baseline() -> None:
    """Thin buckets and a short history never alert."""
    thin = _calm_then_surge(()) + _mentions(25, negative=2, positive=0)
    assert recompute_episodes(RuleSet(rules=[_rule()]), thin, until=T0 + 30 * HOUR) == []
    early = _calm_then_surge((2,))
    assert recompute_episodes(RuleSet(rules=[_rule()]), early, until=T0 + 20 * HOUR) == []


def test_volume_spike_counts_empty_buckets() -> None:
    """The volume baseline counts empty buckets as zero mentions."""
    rule = _rule(kind="volume_spike", min_volume=5, threshold_sd=3.0, min_spread=1.0)
    records: list[MentionRecord] = []
    for hour in range(0, 20, 2):
        records += _mentions(hour, negative=0, positive=1)
    records += _mentions(21, negative=0, positive=12)
    episodes = recompute_episodes(RuleSet(rules=[rule]), records, until=T0 + 30 * HOUR)
    assert len(episodes) == 1
    assert episodes[0].value == 12.0


def test_score_drop_detects_fall() -> None:
    """A day whose mean score falls far below the baseline fires score-drop."""
    rule = _rule(kind="score_drop", bucket="1h", threshold_sd=2.0, min_spread=0.1)
    episodes = recompute_episodes(
        RuleSet(rules=[rule]), _calm_then_surge((12,)), until=T0 + 20 * HOUR
    )
    assert [e.fired_at for e in episodes] == [T0 + 13 * HOUR]


def test_split_runs_equal_one_run() -> None:
    """Evaluating in many small runs gives the episodes of one run over everything."""
    rule = _rule(for_buckets=2)
    records = _calm_then_surge((8, 9, 10), total=30)
    records += [
        MentionRecord(r.published_at, "MSFT", r.label, r.score)
        for r in _calm_then_surge((12, 13, 22), total=30)
    ]
    whole = recompute_episodes(RuleSet(rules=[rule]), records, until=T0 + 30 * HOUR)
    series = build_series(records, "1h")
    active: dict = {}
    changed: dict = {}
    after = None
    for step in range(1, 31):
        until = T0 + step * HOUR
        for episode in run_rule(rule, series, after=after, until=until, active=active):
            changed[episode.key] = episode
        after = until
    pieces = sorted(changed.values(), key=lambda e: e.key)
    assert [(e.key, e.state, e.fired_at, e.resolved_at) for e in pieces] == [
        (e.key, e.state, e.fired_at, e.resolved_at) for e in whole
    ]
    assert len(whole) >= 2


def test_default_rules_file_loads() -> None:
    """The shipped rules file is valid and contains the three kinds."""
    rules = load_rules(DEFAULT_RULES_FILE)
    assert {rule.kind for rule in rules.rules} == {
        "negative_share_surge",
        "volume_spike",
        "score_drop",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [{name: a, kind: unknown}]", "invalid"),
        ("rules: [", "not valid YAML"),
        ("group_wait_s: 1\n", "invalid"),
    ],
)
def test_invalid_rules_file_raises(tmp_path: Path, text: str, expected: str) -> None:
    """A broken rules file raises ConfigurationError naming the file."""
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=expected):
        load_rules(path)


def test_missing_rules_file_raises(tmp_path: Path) -> None:
    """A missing rules file names the setting to fix."""
    with pytest.raises(ConfigurationError, match="RULES_FILE"):
        load_rules(tmp_path / "absent.yaml")
