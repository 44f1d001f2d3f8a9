"""Retraining check: promote a candidate only when it beats production on held-out data.

For every registered name with a production version, the newest candidate
registered after it is compared with it:

* classifiers on macro-F1 over the held-out test split. When both versions were
  trained on the same data (same fingerprint) their stored test figures are
  compared; otherwise both are evaluated on the test split of the data set the
  candidate's manifest names.
* causal LMs (drafters) on the evaluation loss stored at training time, when
  both were trained on the same data; lower wins.

A candidate that cannot be compared fairly is left as it is, with the reason.
The beat schedule runs this as the ``training.check_candidates`` task, and
``diptych models check-candidates`` runs it by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.registry import find_version, list_versions, promote_version, verify_version
from shared.registry.files import read_manifest
from shared.registry.models import ModelVersion

__all__ = ["CandidateDecision", "check_candidates"]

logger = logging.getLogger(__name__)

CLASSIFIER_TASK = "sequence-classification"
CAUSAL_LM_TASK = "causal-lm"


@dataclass(frozen=True)
class CandidateDecision:
    """The outcome of comparing one candidate with production."""

    name: str
    candidate: str
    production: str
    metric: str
    candidate_value: float | None
    production_value: float | None
    promoted: bool
    reason: str


def check_candidates(
    names: Sequence[str] | None = None, *, min_gain: float = 0.0, dry_run: bool = False
) -> list[CandidateDecision]:
    """Compare each name's newest candidate with production and promote the better one.

    Args:
        names: Registry names to check; ``None`` checks every name.
        min_gain: How much better the candidate must be (absolute metric units).
        dry_run: Decide without promoting.

    Returns:
        One decision per name that has both a production version and a newer candidate.
    """
    decisions = []
    for production, candidate in _pairs(list_versions(), names):
        decision = _decide(production, candidate, min_gain)
        if decision.promoted and not dry_run:
            promote_version(candidate.reference)
        if dry_run and decision.promoted:
            decision = _replace(decision, promoted=False, reason=f"dry run: {decision.reason}")
        logger.info(
            "candidate checked: name=%s candidate=%s production=%s %s=%s/%s promoted=%s reason=%s",
            decision.name,
            decision.candidate,
            decision.production,
            decision.metric,
            decision.candidate_value,
            decision.production_value,
            decision.promoted,
            decision.reason,
        )
        decisions.append(decision)
    return decisions


def _replace(decision: CandidateDecision, **changes: Any) -> CandidateDecision:
    return CandidateDecision(**{**decision.__dict__, **changes})


def _pairs(
    versions: list[ModelVersion], names: Sequence[str] | None
) -> list[tuple[ModelVersion, ModelVersion]]:
    wanted = set(names) if names is not None else None
    by_name: dict[str, list[ModelVersion]] = {}
    for row in versions:
        if wanted is None or row.name in wanted:
            by_name.setdefault(row.name, []).append(row)
    pairs = []
    for rows in by_name.values():
        production = next((row for row in rows if row.stage == "production"), None)
        if production is None:
            continue
        newer = [
            row for row in rows if row.stage == "candidate" and row.version > production.version
        ]
        if newer:
            pairs.append((production, max(newer, key=lambda row: row.version)))
    return pairs


def _decide(
    production: ModelVersion, candidate: ModelVersion, min_gain: float
) -> CandidateDecision:
    if candidate.task != production.task:
        return _skip(
            production, candidate, "", f"task changed ({production.task} -> {candidate.task})"
        )
    if candidate.task == CAUSAL_LM_TASK:
        return _decide_by_loss(production, candidate, min_gain)
    if candidate.task == CLASSIFIER_TASK:
        return _decide_classifier(production, candidate, min_gain)
    return _skip(production, candidate, "", f"no held-out comparison for task {candidate.task!r}")


def _decide_classifier(
    production: ModelVersion, candidate: ModelVersion, min_gain: float
) -> CandidateDecision:
    metric = "macro_f1"
    same_data = bool(candidate.data_fingerprint) and (
        candidate.data_fingerprint == production.data_fingerprint
    )
    stored = [row.metrics.get(metric) for row in (candidate, production)]
    splits = [row.metrics.get("split") for row in (candidate, production)]
    if same_data and None not in stored and splits == ["test", "test"]:
        return _compare(
            production, candidate, metric, stored[0], stored[1], min_gain, "stored test"
        )
    dataset = read_manifest(Path(candidate.path)).get("dataset")
    if not dataset:
        return _skip(
            production,
            candidate,
            metric,
            "trained on other data and its manifest names no data set to evaluate both on",
        )
    values = _evaluate_on_dataset([candidate, production], str(dataset))
    return _compare(
        production, candidate, metric, values[0], values[1], min_gain, f"{dataset} test split"
    )


def _evaluate_on_dataset(rows: list[ModelVersion], dataset: str) -> list[float]:
    from pipelines.datasets import load_dataset_splits
    from shared.training.classifier import evaluate_classifier_folder

    splits = load_dataset_splits(dataset, seed=42)
    return [
        evaluate_classifier_folder(
            verify_version(find_version(row.reference)), splits.test
        ).macro_f1
        for row in rows
    ]


def _decide_by_loss(
    production: ModelVersion, candidate: ModelVersion, min_gain: float
) -> CandidateDecision:
    metric = "eval_loss"
    if not candidate.data_fingerprint or candidate.data_fingerprint != production.data_fingerprint:
        return _skip(
            production, candidate, metric, "evaluation losses on other data are not comparable"
        )
    candidate_loss = _last_loss(candidate.metrics.get(metric))
    production_loss = _last_loss(production.metrics.get(metric))
    if candidate_loss is None or production_loss is None:
        return _skip(production, candidate, metric, "an evaluation loss is missing")
    # Lower loss is better, so the comparison runs on the negated values.
    decision = _compare(
        production,
        candidate,
        metric,
        -candidate_loss,
        -production_loss,
        min_gain,
        "stored evaluation loss",
    )
    return _replace(decision, candidate_value=candidate_loss, production_value=production_loss)


def _last_loss(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and value:
        last = value[-1]
        return float(last[-1] if isinstance(last, list | tuple) else last)
    return None


def _compare(
    production: ModelVersion,
    candidate: ModelVersion,
    metric: str,
    candidate_value: float | None,
    production_value: float | None,
    min_gain: float,
    basis: str,
) -> CandidateDecision:
    assert candidate_value is not None and production_value is not None
    promoted = candidate_value > production_value + min_gain
    verb = "beats" if promoted else "does not beat"
    return CandidateDecision(
        name=candidate.name,
        candidate=candidate.reference,
        production=production.reference,
        metric=metric,
        candidate_value=float(candidate_value),
        production_value=float(production_value),
        promoted=promoted,
        reason=f"candidate {verb} production by more than {min_gain:g} ({basis})",
    )


def _skip(
    production: ModelVersion, candidate: ModelVersion, metric: str, reason: str
) -> CandidateDecision:
    return CandidateDecision(
        name=candidate.name,
        candidate=candidate.reference,
        production=production.reference,
        metric=metric,
        candidate_value=None,
        production_value=None,
        promoted=False,
        reason=f"left as candidate: {reason}",
    )
