"""Input checks shared by the vector and BM25 indexes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np

from shared.errors import RetrievalError

__all__ = ["as_id_array", "as_text_list", "as_unit_vectors", "check_top_k"]


def as_id_array(ids: Any, *, name: str = "ids") -> np.ndarray:
    """Return `ids` as a 1-D int64 array of distinct, non-negative document ids.

    Raises:
        RetrievalError: If `ids` is not a flat sequence of distinct integers >= 0.
    """
    if not isinstance(ids, np.ndarray | Sequence):
        ids = list(ids)
    array = np.asarray(ids)
    if array.ndim != 1:
        raise RetrievalError(
            f"`{name}` must be a flat sequence of integers, got an array of shape {array.shape!r}."
        )
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise RetrievalError(
            f"`{name}` must contain integer database row ids, got dtype {str(array.dtype)!r} "
            f"(first value {array[0]!r}). Convert the ids with int() first."
        )
    negative = array[array < 0]
    if negative.size:
        # FAISS pads missing results with -1, so a negative id would be mistaken for "no hit".
        raise RetrievalError(
            f"`{name}` must be >= 0, got {int(negative[0])!r}. Use the database row id."
        )
    values, counts = np.unique(array, return_counts=True)
    if (counts > 1).any():
        raise RetrievalError(
            f"`{name}` contains the id {int(values[counts > 1][0])!r} more than once. "
            "Pass each document once per call."
        )
    return array.astype(np.int64)


def as_unit_vectors(vectors: Any, *, dimension: int, name: str = "vectors") -> np.ndarray:
    """Return a float32 (n, dimension) copy of `vectors` with each row scaled to unit length.

    Raises:
        RetrievalError: If `vectors` is not a 2-D numeric array with `dimension` columns, or a
            row contains NaN or infinity or is all zeros.
    """
    try:
        array = np.array(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise RetrievalError(
            f"`{name}` must be a 2-D array of numbers, got {type(vectors).__name__}: {exc}"
        ) from exc
    if array.ndim != 2:
        raise RetrievalError(
            f"`{name}` must be a 2-D array (n, {dimension}), got shape {array.shape!r}. "
            "Wrap a single vector as vector[None, :]."
        )
    if array.shape[1] != dimension:
        raise RetrievalError(
            f"`{name}` must have {dimension} columns (the index dimension), got "
            f"{array.shape[1]!r}. Encode with the embedding model the index was built for."
        )
    bad_rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad_rows.size:
        raise RetrievalError(
            f"`{name}` row {int(bad_rows[0])!r} contains NaN or infinity. "
            "Check the encoder output before indexing it."
        )
    zero_rows = np.flatnonzero(~array.any(axis=1))
    if zero_rows.size:
        raise RetrievalError(
            f"`{name}` row {int(zero_rows[0])!r} is all zeros, so it has no direction to "
            "compare. Drop it or encode the text again."
        )
    array = np.ascontiguousarray(array)
    faiss.normalize_L2(array)
    return array


def as_text_list(texts: Any, *, name: str = "texts") -> list[str]:
    """Return `texts` as a list of strings.

    Raises:
        RetrievalError: If `texts` is a single string or contains a non-string item.
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise RetrievalError(
            f"`{name}` must be a list of strings, got {type(texts).__name__}. "
            "Wrap a single text in a list."
        )
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise RetrievalError(
                f"`{name}[{position}]` must be a string, got {type(text).__name__} {text!r}."
            )
    return list(texts)


def check_top_k(k: Any, *, name: str = "k") -> int:
    """Return `k` if it is a positive integer.

    Raises:
        RetrievalError: If `k` is not an integer >= 1.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise RetrievalError(f"`{name}` must be an integer >= 1, got {k!r}.")
    return int(k)
