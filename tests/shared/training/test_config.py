"""Training configs validate on build, YAML experiment files load, label helpers reject bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.utils.class_weight import compute_class_weight

import pipelines
from shared.data import DatasetSplits, LabelledText
from shared.errors import ConfigurationError, DataError, TrainingError
from shared.training._common import build_label_map, compute_class_weights
from shared.training.config import (
    ClassifierTrainingConfig,
    MlmTrainingConfig,
    load_config_file,
)

CONFIG_DIR = Path(pipelines.__file__).resolve().parent / "configs"
CONFIG_FILES = sorted(CONFIG_DIR.glob("*.yaml"))


# ClassifierTrainingConfig


def test_reject_unknown_key() -> None:
    """A misspelt setting fails validation instead of being ignored."""
    with pytest.raises(ValidationError, match="learning_rat"):
        ClassifierTrainingConfig.model_validate({"learning_rat": 1e-3})


def test_reject_unknown_key_in_nested_options() -> None:
    """Nested option blocks are as strict as the top level."""
    with pytest.raises(ValidationError, match="rank"):
        ClassifierTrainingConfig.model_validate({"method": "lora", "lora": {"rank": 8}})


def test_reject_unknown_method() -> None:
    """Only the six supported methods validate."""
    with pytest.raises(ValidationError, match="method"):
        ClassifierTrainingConfig.model_validate({"method": "qlora"})


def test_reject_adalora_target_rank_above_init() -> None:
    """AdaLoRA can only prune, so `target_r` may not exceed `init_r`."""
    with pytest.raises(ValidationError, match="target_r"):
        ClassifierTrainingConfig.model_validate(
            {"method": "adalora", "adalora": {"init_r": 4, "target_r": 8}}
        )


@pytest.mark.parametrize(("tinit", "tfinal"), [(0.5, 0.5), (0.6, 0.5), (0.9, 0.3)])
def test_reject_adalora_schedule_without_pruning(tinit: float, tfinal: float) -> None:
    """`tinit_fraction` + `tfinal_fraction` at or above 1 leaves no steps for pruning."""
    with pytest.raises(ValidationError, match="tinit_fraction"):
        ClassifierTrainingConfig.model_validate(
            {"method": "adalora", "adalora": {"tinit_fraction": tinit, "tfinal_fraction": tfinal}}
        )


def test_accept_adalora_schedule_just_below_one() -> None:
    """A schedule that leaves a sliver of pruning steps is valid."""
    config = ClassifierTrainingConfig.model_validate(
        {"method": "adalora", "adalora": {"tinit_fraction": 0.5, "tfinal_fraction": 0.49}}
    )

    assert config.adalora.tfinal_fraction == 0.49


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("full", 5e-5),
        ("lora", 5e-4),
        ("adalora", 5e-4),
        ("prefix", 1e-2),
        ("head", 5e-5),
        ("contrastive", 5e-5),
    ],
)
def test_resolve_learning_rate_per_method(method: str, expected: float) -> None:
    """An unset learning rate takes the method's default."""
    config = ClassifierTrainingConfig(method=method)  # type: ignore[arg-type]

    assert config.resolved_learning_rate == expected


def test_resolve_explicit_learning_rate() -> None:
    """An explicit learning rate wins over the method default, for body and head."""
    config = ClassifierTrainingConfig(method="prefix", learning_rate=3e-3)

    assert config.resolved_learning_rate == 3e-3
    assert config.resolved_head_learning_rate == 3e-3


# load_config_file


def test_find_experiment_configs() -> None:
    """The glob finds the shipped experiments, so the parametrised test checks something."""
    assert len(CONFIG_FILES) >= 6, f"found {[path.name for path in CONFIG_FILES]}"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda path: path.name)
def test_load_experiment_config(path: Path) -> None:
    """Every shipped YAML experiment validates.

    Files named `<data set>-mlm.yaml` are continued-pretraining configs and
    `<service>-drafter.yaml` causal-LM fine-tuning configs. Every other file is a
    classifier config named `<data set>-<method>.yaml`.
    """
    if path.stem.endswith("-mlm"):
        assert isinstance(load_config_file(path, MlmTrainingConfig), MlmTrainingConfig)
        return
    if path.stem.endswith("-drafter"):
        from shared.training.causal_lm import CausalLmSftConfig

        assert isinstance(load_config_file(path, CausalLmSftConfig), CausalLmSftConfig)
        return

    config = load_config_file(path, ClassifierTrainingConfig)

    assert isinstance(config, ClassifierTrainingConfig)
    assert path.stem.endswith(f"-{config.method}")


def test_apply_override_to_config_file() -> None:
    """A non-None override replaces the file's value and None leaves it alone."""
    path = CONFIG_DIR / "banking77-lora.yaml"

    config = load_config_file(path, ClassifierTrainingConfig, epochs=1.0, seed=None)

    assert isinstance(config, ClassifierTrainingConfig)
    assert config.epochs == 1.0
    assert config.seed == ClassifierTrainingConfig().seed


def test_reject_missing_config_file(tmp_path: Path) -> None:
    """A path that is not a file raises ConfigurationError naming it."""
    missing = tmp_path / "nothing.yaml"

    with pytest.raises(ConfigurationError, match=r"nothing\.yaml"):
        load_config_file(missing, ClassifierTrainingConfig)


def test_reject_yaml_list(tmp_path: Path) -> None:
    """A YAML document that is a list, not a mapping, raises ConfigurationError."""
    path = tmp_path / "list.yaml"
    path.write_text("- method: head\n- method: lora\n", encoding="utf-8")

    with pytest.raises(ConfigurationError, match="mapping"):
        load_config_file(path, ClassifierTrainingConfig)


def test_reject_invalid_setting_in_file(tmp_path: Path) -> None:
    """A validation error inside a file surfaces as ConfigurationError naming the file."""
    path = tmp_path / "bad.yaml"
    path.write_text("method: head\nbatch_size: 0\n", encoding="utf-8")

    with pytest.raises(ConfigurationError, match=r"bad\.yaml"):
        load_config_file(path, ClassifierTrainingConfig)


# compute_class_weights


@pytest.mark.parametrize(
    "labels",
    [
        [0, 1, 2],
        [0, 0, 0, 1, 2, 2],
        [2, 2, 2, 2, 2, 2, 2, 1, 0, 0],
    ],
)
def test_compute_class_weights_matches_scikit_learn(labels: list[int]) -> None:
    """The weights equal scikit-learn's `compute_class_weight("balanced")`."""
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.asarray(labels))

    weights = compute_class_weights(labels, num_labels=3)

    assert weights.dtype == torch.float32
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)


def test_reject_class_weights_for_class_without_example() -> None:
    """A class with no training example cannot be weighted, and the error names its index."""
    with pytest.raises(TrainingError, match=r"\[2\]"):
        compute_class_weights([0, 1, 1, 0], num_labels=3)


# build_label_map


def test_build_label_map_from_sorted_labels() -> None:
    """Labels map to 0..n-1 in the split's sorted label order."""
    splits = DatasetSplits(
        train=[LabelledText("a", "refund"), LabelledText("b", "card_lost")],
        dev=[],
        labels=["card_lost", "refund"],
    )

    assert build_label_map(splits) == {"card_lost": 0, "refund": 1}


def test_reject_label_map_with_single_label() -> None:
    """A classifier needs at least two labels."""
    splits = DatasetSplits(
        train=[LabelledText("a", "refund"), LabelledText("b", "refund")],
        dev=[],
        labels=["refund"],
    )

    with pytest.raises(DataError, match="at least two labels"):
        build_label_map(splits)


def test_compute_class_weights_rejects_out_of_range_index() -> None:
    """A class index at or above `num_labels` is an encoding error, not a silent miscount."""
    with pytest.raises(TrainingError, match=r"\[5\]"):
        compute_class_weights([0, 1, 2, 5], 3)


def test_adalora_never_reloads_earlier_checkpoint() -> None:
    """AdaLoRA checkpoints change shape as ranks are pruned, so the last state is kept."""
    from shared.training._trainer import _selects_best_checkpoint

    adalora = ClassifierTrainingConfig(method="adalora")
    full = ClassifierTrainingConfig(method="full")

    assert not _selects_best_checkpoint(adalora, has_dev=True)
    assert _selects_best_checkpoint(full, has_dev=True)
    assert not _selects_best_checkpoint(full, has_dev=False)
