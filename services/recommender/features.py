"""Behaviour features built from interactions before a cut: popularity, trend, item-kNN.

Every function here takes a log that the caller has already cut, and the cut
time itself, so a feature can never count an interaction from after the cut.
Item-kNN similarity is the cosine of the items' user sets (co-occurrence count
divided by the square root of both items' user counts), keeping each item's
`neighbours_per_item` strongest neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from services.recommender.behaviour import Catalogue, InteractionLog

__all__ = [
    "BehaviourFeatures",
    "build_behaviour_features",
    "build_history_matrix",
    "keep_top_per_row",
]

SECONDS_PER_DAY = 86_400.0


@dataclass
class BehaviourFeatures:
    """Counts and similarities over catalogue rows, as of `cut` (Unix seconds).

    Attributes:
        popularity: Interactions per item before the cut, float32 (n_items,).
        trend: Interactions per item in the trend window before the cut.
        similarity: Item-kNN cosine similarity, CSR (n_items, n_items), zero diagonal.
        cut: The cut time; nothing at or after it was counted.
    """

    popularity: np.ndarray
    trend: np.ndarray
    similarity: sparse.csr_matrix
    cut: float


def build_behaviour_features(
    log: InteractionLog,
    catalogue: Catalogue,
    *,
    cut: float,
    neighbours_per_item: int,
    trend_window_days: float,
) -> BehaviourFeatures:
    """Count popularity and trend and build the item-kNN similarity from `log`.

    Args:
        log: Interactions, all strictly before `cut`.
        catalogue: Items; interactions with items outside it are ignored.
        cut: The cut time in Unix seconds.
        neighbours_per_item: Similar items kept per item.
        trend_window_days: Days before `cut` counted by `trend`.

    Raises:
        ValueError: If `log` contains an interaction at or after `cut`.
    """
    if len(log) and float(log.times.max()) >= cut:
        raise ValueError(
            f"`log` contains an interaction at {float(log.times.max())!r}, not before the "
            f"cut {cut!r}; pass `log.before(cut)`."
        )
    n_items = len(catalogue)
    rows = catalogue.rows_of(log.items)
    known = rows >= 0
    popularity = np.bincount(rows[known], minlength=n_items).astype(np.float32)
    recent = known & (log.times >= cut - trend_window_days * SECONDS_PER_DAY)
    trend = np.bincount(rows[recent], minlength=n_items).astype(np.float32)
    users = log.users[known]
    matrix = build_history_matrix(users, rows[known], n_items=n_items)
    return BehaviourFeatures(
        popularity=popularity,
        trend=trend,
        similarity=_build_item_similarity(matrix, neighbours=neighbours_per_item),
        cut=cut,
    )


def build_history_matrix(users: np.ndarray, rows: np.ndarray, *, n_items: int) -> sparse.csr_matrix:
    """Build a binary user-by-item CSR matrix (one row per distinct user, ascending id)."""
    _, user_rows = np.unique(users, return_inverse=True)
    n_users = int(user_rows.max()) + 1 if len(user_rows) else 0
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (user_rows, rows)), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _build_item_similarity(matrix: sparse.csr_matrix, *, neighbours: int) -> sparse.csr_matrix:
    counts = np.asarray(matrix.sum(axis=0)).ravel()  # (n_items,)
    cooccurrence = (matrix.T @ matrix).tocsr()  # (n_items, n_items)
    cooccurrence.setdiag(0)
    cooccurrence.eliminate_zeros()
    norms = np.sqrt(np.maximum(counts, 1.0)).astype(np.float32)
    coo = cooccurrence.tocoo()
    values = coo.data / (norms[coo.row] * norms[coo.col])
    scaled = sparse.csr_matrix(
        (values.astype(np.float32), (coo.row, coo.col)), shape=cooccurrence.shape
    )
    return keep_top_per_row(scaled, neighbours)


def keep_top_per_row(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Keep the `k` largest entries of each row of a CSR matrix."""
    matrix = matrix.tocsr()
    lengths = np.diff(matrix.indptr)
    if not len(lengths) or lengths.max() <= k:
        return matrix
    keep = np.ones(len(matrix.data), dtype=bool)
    for row in np.flatnonzero(lengths > k):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        order = np.argpartition(-matrix.data[start:end], k)[k:]
        keep[start + order] = False
    coo = matrix.tocoo()
    return sparse.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape)
