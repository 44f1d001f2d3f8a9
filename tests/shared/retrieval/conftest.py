"""Fixtures for the retrieval tests: the bundled encoder, loaded once, and random vectors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from shared.retrieval import TextEmbedder


def unit_vectors(count: int, dimension: int, *, seed: int) -> np.ndarray:
    """Return `count` random float32 rows of unit length."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def _session_embedder() -> TextEmbedder:
    """The bundled all-MiniLM-L6-v2 encoder, loaded once for the whole session."""
    return TextEmbedder.default()


@pytest.fixture
def embedder(_session_embedder: TextEmbedder) -> TextEmbedder:
    """A private copy of the session encoder, so one test's changes cannot leak into another."""
    return copy.deepcopy(_session_embedder)
