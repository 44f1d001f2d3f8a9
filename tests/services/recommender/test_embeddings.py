"""Item embedding with the per-model cache, in chunks that report progress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.recommender import embeddings
from services.recommender.embeddings import embed_texts
from shared.retrieval import load_text_embedder

TEXTS = ["alpha", "beta", "alpha", "gamma", "delta", "epsilon", "beta"]


def test_embed_texts_reports_each_chunk(
    reco_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress counts every text, repeats included, and ends at the total."""
    monkeypatch.setattr(embeddings, "ENCODE_CHUNK", 2)
    embedder = load_text_embedder(None)
    calls: list[tuple[int, int]] = []

    vectors = embed_texts(embedder, TEXTS, progress=lambda done, total: calls.append((done, total)))

    # Five distinct texts in chunks of two make three encoder calls after the first report.
    assert len(calls) == 4
    assert calls[0] == (0, 7)
    assert calls[-1] == (7, 7)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})
    assert np.allclose(vectors, embedder.encode(TEXTS), atol=1e-5)


def test_embed_texts_counts_cached_texts_as_done(
    reco_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a warm cache only new texts are encoded; the first report counts the cached ones."""
    monkeypatch.setattr(embeddings, "ENCODE_CHUNK", 2)
    embedder = load_text_embedder(None)
    cache = tmp_path / "cache"
    first = embed_texts(embedder, TEXTS[:4], cache_dir=cache)
    calls: list[tuple[int, int]] = []

    second = embed_texts(
        embedder, TEXTS, cache_dir=cache, progress=lambda done, total: calls.append((done, total))
    )

    assert calls == [(5, 7), (7, 7)]
    assert np.allclose(second[:4], first)
    assert np.allclose(second, embedder.encode(TEXTS), atol=1e-5)


def test_embed_texts_empty_list(reco_env: Path) -> None:
    """No texts give an empty matrix and one report of (0, 0)."""
    embedder = load_text_embedder(None)
    calls: list[tuple[int, int]] = []
    vectors = embed_texts(embedder, [], progress=lambda done, total: calls.append((done, total)))
    assert vectors.shape == (0, embedder.dimension)
    assert calls == [(0, 0)]
