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
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.retrieval import TextEmbedder, VectorIndex, build_vector_index
from shared.settings import RecommenderSettings

__all__ = [
    "ENCODE_CHUNK",
    "REBUILD_COMMAND",
    "build_item_index",
    "embed_texts",
    "load_item_index",
]

logger = logging.getLogger(__name__)

REBUILD_COMMAND = "diptych recommend fit"
# Texts per `TextEmbedder.encode` call in `embed_texts`, which reports progress
# after each call. The encoder still batches inside a call.
ENCODE_CHUNK = 256
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]+")


def embed_texts(
    embedder: TextEmbedder,
    texts: list[str],
    *,
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Embed `texts` with `embedder`, reusing vectors cached for the same model and text.

    Args:
        embedder: The encoder.
        texts: The texts, duplicates allowed.
        cache_dir: Folder of the per-model cache; None encodes every text.
        progress: Called with (texts embedded, len(texts)) once at the start, with
            cached texts counted as embedded, and after each chunk of
            `ENCODE_CHUNK` texts.

    Returns:
        Unit-length float32 vectors, shape (len(texts), embedder.dimension).
    """
    keys = [hashlib.sha1(text.encode("utf-8")).hexdigest() for text in texts]
    path = None if cache_dir is None else cache_dir / f"{_UNSAFE.sub('_', embedder.name)}.npz"
    cached = {} if path is None else _read_cache(path)
    missing = sorted(
        {key: text for key, text in zip(keys, texts, strict=True) if key not in cached}.items()
    )
    repeats = Counter(keys)
    done = len(texts) - sum(repeats[key] for key, _ in missing)
    if progress is not None:
        progress(done, len(texts))
    for start in range(0, len(missing), ENCODE_CHUNK):
        chunk = missing[start : start + ENCODE_CHUNK]
        vectors = embedder.encode([text for _, text in chunk])
        cached.update({key: vector for (key, _), vector in zip(chunk, vectors, strict=True)})
        done += sum(repeats[key] for key, _ in chunk)
        if progress is not None:
            progress(done, len(texts))
    if missing and path is not None:
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
