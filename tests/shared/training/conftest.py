"""A small real Banking77 subset and one trained model per method, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.data import DatasetSplits, LabelledText, split_examples
from shared.training.classifier import TrainedClassifier, train_classifier
from shared.training.config import ClassifierTrainingConfig
from tests.conftest import find_data_dir

# Five distinct Banking77 intents, 36 train texts each: enough
# for every method to learn something in one epoch, small enough for CI.
SUBSET_LABELS = (
    "card_arrival",
    "exchange_rate",
    "lost_or_stolen_card",
    "pin_blocked",
    "top_up_failed",
)
TEXTS_PER_LABEL = 36

# Tiny but real settings per method: one epoch, short texts.
TINY_SETTINGS: dict[str, dict[str, object]] = {
    "head": {},
    "full": {"epochs": 1},
    "lora": {"epochs": 1, "lora": {"r": 4, "alpha": 8}},
    "adalora": {
        "epochs": 2,
        "adalora": {
            "init_r": 6,
            "target_r": 2,
            "delta_t": 1,
            "tinit_fraction": 0.1,
            "tfinal_fraction": 0.2,
        },
    },
    "prefix": {"epochs": 1, "prefix": {"num_virtual_tokens": 4}},
    "contrastive": {"contrastive": {"num_pairs": 64}},
}


def _read_csv(path: Path) -> list[LabelledText]:
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return [
            LabelledText(text=row["text"], label=row["category"]) for row in csv.DictReader(handle)
        ]


@pytest.fixture(scope="session")
def banking_subset() -> DatasetSplits:
    """Five Banking77 intents: train and dev texts, and their official test texts."""
    data_dir = find_data_dir()
    if data_dir is None:
        pytest.skip("public data sets not found: set DIPTYCH_DATA_DIR")
    train = _read_csv(data_dir / "banking77" / "train.csv")
    chosen: list[LabelledText] = []
    for label in SUBSET_LABELS:
        chosen.extend([example for example in train if example.label == label][:TEXTS_PER_LABEL])
    test = [
        example
        for example in _read_csv(data_dir / "banking77" / "test.csv")
        if example.label in SUBSET_LABELS
    ]
    return split_examples(chosen, dev_fraction=0.2, test_fraction=0.0, seed=7, explicit_test=test)


@pytest.fixture(scope="session")
def probe_texts() -> list[str]:
    """200 Banking77 test texts of every intent, for comparing saved and reloaded models."""
    data_dir = find_data_dir()
    if data_dir is None:
        pytest.skip("public data sets not found: set DIPTYCH_DATA_DIR")
    return [example.text for example in _read_csv(data_dir / "banking77" / "test.csv")[::15][:200]]


@pytest.fixture(scope="session")
def trained_models(
    banking_subset: DatasetSplits, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, TrainedClassifier]:
    """One classifier per method, trained on the subset (about a minute in all on 2 cores)."""
    home = tmp_path_factory.mktemp("training-home")
    previous = os.environ.get("DIPTYCH_HOME")
    os.environ["DIPTYCH_HOME"] = str(home)
    results: dict[str, TrainedClassifier] = {}
    try:
        for method, settings in TINY_SETTINGS.items():
            config = ClassifierTrainingConfig.model_validate(
                {"method": method, "max_length": 32, "batch_size": 16, "seed": 1, **settings}
            )
            results[method] = train_classifier(banking_subset, config, output_dir=home / method)
    finally:
        if previous is None:
            os.environ.pop("DIPTYCH_HOME", None)
        else:
            os.environ["DIPTYCH_HOME"] = previous
    return results
