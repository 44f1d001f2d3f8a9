"""Item embeddings: encoding with a per-model cache, and the FAISS item index.

The index kind follows the catalogue size: exact (flat) search below
`RecommenderSettings.flat_threshold` items, `large_index_kind` (HNSW or IVF)
from there on. The index folder's manifest records the embedding model, so
loading it with another encoder raises `IndexMismatchError` naming the command
that rebuilds it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from shared.retrieval import TextEmbedder, VectorIndex, build_vector_index
from shared.settings import RecommenderSettings

__all__ = ["REBUILD_COMMAND", "build_item_index", "embed_texts", "load_item_index"]

logger = logging.getLogger(__name__)

REBUILD_COMMAND = "diptych recommend fit"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]+")


def embed_texts(
    embedder: TextEmbedder,
    texts: list[str],
    *,
    cache_dir: Path | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Embed `texts` with `embedder`, reusing vectors cached for the same model and text.

    Returns:
        Unit-length float32 vectors, shape (len(texts), embedder.dimension).
    """
    if cache_dir is None:
        return embedder.encode(texts, show_progress=show_progress)
    keys = [hashlib.sha1(text.encode("utf-8")).hexdigest() for text in texts]
    path = cache_dir / f"{_UNSAFE.sub('_', embedder.name)}.npz"
    cached = _read_cache(path)
    missing = sorted(
        {key: text for key, text in zip(keys, texts, strict=True) if key not in cached}.items()
    )
    if missing:
        vectors = embedder.encode([text for _, text in missing], show_progress=show_progress)
        cached.update({key: vector for (key, _), vector in zip(missing, vectors, strict=True)})
        _write_cache(path, cached)
    logger.info(
        "item texts embedded model=%s count=%d encoded=%d", embedder.name, len(texts), len(missing)
    )
    if not texts:
        return np.empty((0, embedder.dimension), dtype=np.float32)
    return np.stack([cached[key] for key in keys]).astype(np.float32)


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path) as stored:
        return dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))


def _write_cache(path: Path, cached: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = np.array(list(cached), dtype="U40")
    vectors = np.stack(list(cached.values())).astype(np.float32)
    # Written to a temporary file and renamed, so a reader never sees half a cache.
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(handle)
    np.savez(temporary, keys=keys, vectors=vectors)
    os.replace(temporary, path)


def build_item_index(
    item_ids: np.ndarray,
    vectors: np.ndarray,
    *,
    embedding_model: str | None,
    settings: RecommenderSettings,
) -> VectorIndex:
    """Build the FAISS index over item vectors, its kind chosen by the catalogue size."""
    kind = settings.large_index_kind if len(item_ids) >= settings.flat_threshold else "flat"
    index = build_vector_index(vectors.shape[1], kind=kind, embedding_model=embedding_model)
    index.add(item_ids, vectors)
    logger.info("item index built kind=%s count=%d", index.kind, len(index))
    return index


def load_item_index(folder: Path, *, embedder: TextEmbedder) -> VectorIndex:
    """Load the item index saved in `folder`, checking it was built by `embedder`.

    Raises:
        IndexMismatchError: If it was built with another embedding model; the
            message names `REBUILD_COMMAND`.
        RetrievalError: If the files are missing or damaged.
    """
    return VectorIndex.load(
        folder,
        expected_model=embedder.name,
        expected_dimension=embedder.dimension,
        rebuild_command=REBUILD_COMMAND,
    )
