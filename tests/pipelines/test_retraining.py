"""The retraining check promotes a candidate only when it beats production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.retraining import check_candidates
from shared.registry import list_versions, promote_version, register_model
from tests.shared.registry.conftest import TINY_BASE_MODEL, TINY_LABEL2ID, write_tiny_model_folder

pytestmark = pytest.mark.usefixtures("database_url")


def _register(
    tmp_path: Path,
    version: int,
    metrics: dict[str, Any],
    *,
    task: str = "sequence-classification",
    fingerprint: str = "same-data",
) -> str:
    folder = write_tiny_model_folder(tmp_path / f"model-{version}")
    row = register_model(
        name="intent",
        task=task,
        model_dir=folder,
        base_model=TINY_BASE_MODEL,
        method="head",
        label_map=TINY_LABEL2ID,
        data_fingerprint=fingerprint,
        metrics=metrics,
    )
    return row.reference


def _stages() -> dict[str, str]:
    return {row.reference: row.stage for row in list_versions("intent")}


def test_better_candidate_is_promoted(tmp_path: Path) -> None:
    production = _register(tmp_path, 1, {"split": "test", "macro_f1": 0.80})
    promote_version(production)
    candidate = _register(tmp_path, 2, {"split": "test", "macro_f1": 0.85})

    [decision] = check_candidates()

    assert decision.promoted
    assert decision.candidate_value == pytest.approx(0.85)
    assert _stages() == {candidate: "production", production: "archived"}


def test_worse_candidate_stays_candidate(tmp_path: Path) -> None:
    production = _register(tmp_path, 1, {"split": "test", "macro_f1": 0.80})
    promote_version(production)
    candidate = _register(tmp_path, 2, {"split": "test", "macro_f1": 0.79})

    [decision] = check_candidates()

    assert not decision.promoted
    assert _stages()[candidate] == "candidate"
    assert _stages()[production] == "production"


def test_min_gain_is_required(tmp_path: Path) -> None:
    promote_version(_register(tmp_path, 1, {"split": "test", "macro_f1": 0.80}))
    _register(tmp_path, 2, {"split": "test", "macro_f1": 0.805})

    [decision] = check_candidates(min_gain=0.01)

    assert not decision.promoted


def test_dry_run_promotes_nothing(tmp_path: Path) -> None:
    production = _register(tmp_path, 1, {"split": "test", "macro_f1": 0.80})
    promote_version(production)
    _register(tmp_path, 2, {"split": "test", "macro_f1": 0.90})

    [decision] = check_candidates(dry_run=True)

    assert not decision.promoted
    assert decision.reason.startswith("dry run")
    assert _stages()[production] == "production"


def test_other_data_without_dataset_is_left_alone(tmp_path: Path) -> None:
    promote_version(_register(tmp_path, 1, {"split": "test", "macro_f1": 0.80}))
    _register(tmp_path, 2, {"split": "test", "macro_f1": 0.99}, fingerprint="other-data")

    [decision] = check_candidates()

    assert not decision.promoted
    assert "names no data set" in decision.reason


def test_drafter_with_lower_eval_loss_is_promoted(tmp_path: Path) -> None:
    production = _register(tmp_path, 1, {"eval_loss": 1.20}, task="causal-lm")
    promote_version(production)
    candidate = _register(tmp_path, 2, {"eval_loss": [[10, 1.30], [20, 1.10]]}, task="causal-lm")

    [decision] = check_candidates()

    assert decision.promoted
    assert decision.candidate_value == pytest.approx(1.10)
    assert _stages()[candidate] == "production"


def test_no_production_means_no_decision(tmp_path: Path) -> None:
    _register(tmp_path, 1, {"split": "test", "macro_f1": 0.80})

    assert check_candidates() == []


def test_names_limit_the_check(tmp_path: Path) -> None:
    promote_version(_register(tmp_path, 1, {"split": "test", "macro_f1": 0.80}))
    _register(tmp_path, 2, {"split": "test", "macro_f1": 0.90})

    assert check_candidates(["other-model"]) == []
