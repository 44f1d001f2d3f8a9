"""Rank fusion: combine ranked id lists from several retrievers into one ranking."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from shared.errors import RetrievalError

__all__ = ["DEFAULT_RRF_K", "reciprocal_rank_fusion"]

DEFAULT_RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]],
    *,
    k: int = DEFAULT_RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """Fuse ranked id lists by reciprocal rank fusion (RRF).

    Each id scores ``sum(weight_i / (k + rank_i))`` over the rankings that contain
    it, with ranks starting at 1. RRF needs only ranks, so retrievers whose scores
    are on different scales (cosine similarity, BM25) combine without normalisation.
    A larger `k` flattens the difference between top and lower ranks.

    References:
        Gordon V. Cormack, Charles L. A. Clarke and Stefan Buettcher. "Reciprocal
        rank fusion outperforms Condorcet and individual rank learning methods."
        SIGIR 2009, pages 758-759. https://doi.org/10.1145/1571941.1572114

    Args:
        rankings: Id lists, each best first. A repeated id counts at its first rank.
        k: Rank offset, >= 0; 60 is the value the paper uses.
        weights: One finite weight >= 0 per ranking; ``None`` weighs each ranking 1.

    Returns:
        (id, score) pairs by descending score; equal scores keep the order in which
        the ids first appear (first ranking first).

    Raises:
        RetrievalError: If `k` is negative or `weights` has the wrong length or an
            invalid value.

    Example:
        >>> reciprocal_rank_fusion([[7, 3], [3]], k=0)
        [(3, 1.5), (7, 1.0)]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise RetrievalError(f"`k` must be an integer >= 0, got {k!r}.")
    factors = _check_weights(weights, count=len(rankings))
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, factors, strict=True):
        seen: set[int] = set()
        for rank, document_id in enumerate(ranking, start=1):
            if document_id in seen:
                continue
            seen.add(document_id)
            scores[document_id] = scores.get(document_id, 0.0) + weight / (k + rank)
    # sorted() is stable and the dict keeps first-appearance order, which breaks ties.
    return sorted(scores.items(), key=lambda item: -item[1])


def _check_weights(weights: Sequence[float] | None, *, count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise RetrievalError(
            f"`weights` must have one value per ranking ({count}), got {len(weights)!r}."
        )
    for position, weight in enumerate(weights):
        if not (isinstance(weight, numbers.Real) and math.isfinite(weight) and weight >= 0):
            raise RetrievalError(
                f"`weights[{position}]` must be a finite number >= 0, got {weight!r}."
            )
    return [float(weight) for weight in weights]
