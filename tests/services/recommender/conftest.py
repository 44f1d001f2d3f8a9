"""Recommender fixtures: a tiny character-level encoder and small stored catalogues."""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from services.recommender import store
from services.recommender.catalogue import InteractionRecord, ItemRecord, TagRecord
from services.recommender.serving import clear_model_cache
from shared.retrieval import clear_embedder_cache
from shared.settings import reset_settings

GENRES = ("space opera", "romantic comedy", "crime drama", "nature documentary")
DAY = 86_400.0


def build_character_bert(folder: Path) -> Path:
    """Save a random 2-layer BERT whose WordPiece vocabulary spells any ASCII word.

    Distinct texts get distinct vectors and identical texts identical ones,
    which is all the tests need from an encoder; it runs in milliseconds.
    """
    folder.mkdir(parents=True, exist_ok=True)
    characters = list(string.ascii_lowercase + string.digits)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters]
    vocabulary += [f"##{c}" for c in characters] + list(".,:;!?()'-")
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    BertTokenizer(vocab=str(vocab_file)).save_pretrained(folder)
    return folder


def build_word_bert(folder: Path, words: Iterable[str]) -> Path:
    """Save an encoder whose vectors are bags of words, so shared words make texts close.

    It has no transformer layers and zero position embeddings, so a text's
    vector is the mean of its tokens' random 64-dimensional embeddings. Each of
    `words` is one token; other words are spelled in characters.
    """
    folder.mkdir(parents=True, exist_ok=True)
    characters = list(string.ascii_lowercase + string.digits)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(words)]
    vocabulary += characters + [f"##{c}" for c in characters] + list(".,:;!?()'-")
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=64,
        num_hidden_layers=0,
        num_attention_heads=1,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    model = BertModel(config)
    with torch.no_grad():
        model.embeddings.position_embeddings.weight.zero_()
        model.embeddings.token_type_embeddings.weight.zero_()
    model.save_pretrained(folder, safe_serialization=True)
    BertTokenizer(vocab=str(vocab_file)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def word_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bag-of-words encoder over the genre words of the synthetic catalogue."""
    words = ["title", "genres", "tags", *" ".join(GENRES).split()]
    return build_word_bert(tmp_path_factory.mktemp("reco-word-encoder") / "word-bert", words)


@pytest.fixture(scope="session")
def character_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny encoder folder, built once per session."""
    return build_character_bert(tmp_path_factory.mktemp("reco-encoder") / "character-bert")


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedding cache shared by the session's tests."""
    return tmp_path_factory.mktemp("reco-embedding-cache")


@pytest.fixture
def reco_env(
    character_encoder: Path, embedding_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Settings that use the tiny encoder; model and embedder caches cleared around the test."""
    monkeypatch.setenv("DIPTYCH_MODELS__ENCODER", str(character_encoder))
    monkeypatch.setenv("DIPTYCH_RECOMMENDER__EMBEDDING_CACHE_DIR", str(embedding_cache))
    reset_settings()
    clear_embedder_cache()
    clear_model_cache()
    yield character_encoder
    clear_embedder_cache()
    clear_model_cache()


def build_synthetic_items(count: int = 40) -> list[ItemRecord]:
    """Items in four genres, ten per genre by default, with English and Chinese tags."""
    items = []
    for item_id in range(1, count + 1):
        genre = GENRES[item_id % len(GENRES)]
        items.append(
            ItemRecord(
                item_id=item_id,
                title=f"Title {item_id} {genre}",
                fields={"genres": genre},
                tags=[TagRecord(f"tag{item_id % 7}"), TagRecord("经典")],
                created_at=1_500_000_000.0 + item_id * DAY,
            )
        )
    return items


def build_synthetic_interactions(
    users: int = 30, per_user: int = 8, *, items: int = 40, seed: int = 5
) -> list[InteractionRecord]:
    """Each user rates items of one favourite genre high and others low, one per day."""
    rng = np.random.default_rng(seed)
    records = []
    for user_id in range(1, users + 1):
        favourite = user_id % len(GENRES)
        chosen = rng.choice(np.arange(1, items + 1), size=per_user, replace=False)
        for step, item_id in enumerate(chosen):
            value = 5.0 if int(item_id) % len(GENRES) == favourite else 1.5
            records.append(
                InteractionRecord(
                    user_id=user_id,
                    item_id=int(item_id),
                    kind="rating",
                    value=value,
                    time=1_600_000_000.0 + (user_id * 100 + step) * DAY,
                )
            )
    return records


@pytest.fixture
def stored_catalogue(reco_env: Path, database_url: str) -> str:
    """The synthetic catalogue and interactions imported into the test database."""
    store.import_items(build_synthetic_items())
    store.import_interactions(build_synthetic_interactions())
    return database_url
