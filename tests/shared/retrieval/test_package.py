"""Tests for the public surface of `shared.retrieval`."""

from __future__ import annotations

import shared.retrieval


def test_public_api_names() -> None:
    """The package exports exactly the documented names, and each one resolves."""
    assert sorted(shared.retrieval.__all__) == [
        "BM25Index",
        "HybridIndex",
        "IndexKind",
        "SearchHit",
        "TagMode",
        "TextEmbedder",
        "VectorIndex",
        "build_vector_index",
        "clear_embedder_cache",
        "load_text_embedder",
        "measure_recall",
        "reciprocal_rank_fusion",
    ]
    for name in shared.retrieval.__all__:
        assert getattr(shared.retrieval, name) is not None
