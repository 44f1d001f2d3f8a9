"""Tests for `TextEmbedder` with the bundled all-MiniLM-L6-v2 encoder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from shared.basemodels import default_encoder
from shared.errors import BaseModelError, RetrievalError
from shared.retrieval import TextEmbedder, clear_embedder_cache, load_text_embedder
from shared.retrieval.embedder import fingerprint_model_folder

# The bundled folder minus the sentence-transformers module files (modules.json,
# sentence_bert_config.json, 1_Pooling/): what a plain `save_pretrained` writes.
PLAIN_FOLDER_FILES = (
    "config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
)


def test_encode_returns_unit_float32_rows(embedder: TextEmbedder) -> None:
    """Each text becomes one float32 row of length 384 with L2 norm 1."""
    vectors = embedder.encode(["My card has not arrived yet", "我的银行卡还没有到", "ok"])

    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encode_empty_list_returns_zero_rows(embedder: TextEmbedder) -> None:
    """An empty list gives shape (0, dimension), not an error."""
    vectors = embedder.encode([])

    assert vectors.shape == (0, embedder.dimension)
    assert vectors.dtype == np.float32


def test_encode_places_paraphrases_closer(embedder: TextEmbedder) -> None:
    """A paraphrase is more similar to its sentence than an unrelated sentence is."""
    anchor, paraphrase, unrelated = embedder.encode(
        [
            "How do I reset my password?",
            "I forgot my login password",
            "What are the fees for international transfers?",
        ]
    )

    assert float(anchor @ paraphrase) > float(anchor @ unrelated) + 0.2


def test_encode_rejects_single_string(embedder: TextEmbedder) -> None:
    """A bare string is rejected instead of being embedded character by character."""
    with pytest.raises(RetrievalError, match="`texts` must be a list of strings, got str"):
        embedder.encode("hello")  # type: ignore[arg-type]


def test_default_embedder_properties(embedder: TextEmbedder) -> None:
    """The default embedder has 384 dimensions, 256 tokens, and a stable name."""
    path = default_encoder().path

    assert embedder.dimension == 384
    assert embedder.model.max_seq_length == 256
    assert re.fullmatch(r"all-MiniLM-L6-v2@[0-9a-f]{12}", embedder.name)
    assert embedder.name == f"all-MiniLM-L6-v2@{fingerprint_model_folder(path)}"


def test_fingerprint_changes_with_config(tmp_path: Path) -> None:
    """Two folders that differ only in config.json get different fingerprints."""
    first = tmp_path / "first"
    second = tmp_path / "second"
    for folder, layers in ((first, 6), (second, 12)):
        folder.mkdir()
        (folder / "config.json").write_text(f'{{"num_hidden_layers": {layers}}}', encoding="utf-8")
        (folder / "model.safetensors").write_bytes(b"0" * 16)

    assert fingerprint_model_folder(first) != fingerprint_model_folder(second)
    assert fingerprint_model_folder(first) == fingerprint_model_folder(first)


def test_from_folder_plain_encoder_matches_sentence_transformers_folder(
    embedder: TextEmbedder, tmp_path: Path
) -> None:
    """A folder without sentence-transformers files gets mean pooling, as the model was saved."""
    source = default_encoder().path
    plain = tmp_path / "MiniLM-plain"
    plain.mkdir()
    for name in PLAIN_FOLDER_FILES:
        (plain / name).symlink_to(source / name)

    plain_embedder = TextEmbedder.from_folder(plain, device="cpu")

    texts = ["Where is my new card?", "退款什么时候到账", "x"]
    np.testing.assert_allclose(plain_embedder.encode(texts), embedder.encode(texts), atol=1e-5)
    assert plain_embedder.name.startswith("MiniLM-plain@")


def test_from_folder_missing_folder_raises(tmp_path: Path) -> None:
    """A folder that does not exist is reported with its path."""
    with pytest.raises(BaseModelError, match="does not exist"):
        TextEmbedder.from_folder(tmp_path / "absent")


def test_from_folder_without_config_raises(tmp_path: Path) -> None:
    """A folder without config.json is not a model folder."""
    with pytest.raises(BaseModelError, match=re.escape("has no config.json")):
        TextEmbedder.from_folder(tmp_path)


def test_load_text_embedder_caches_per_process() -> None:
    """The default embedder loads once; clearing the cache loads a fresh one."""
    clear_embedder_cache()
    first = load_text_embedder(None)

    assert load_text_embedder(None) is first
    clear_embedder_cache()
    assert load_text_embedder(None) is not first
    clear_embedder_cache()
