"""Calibration of a classifier's confidence: reliability bins and expected calibration error.

The expected calibration error (ECE) of Guo et al., "On Calibration of Modern
Neural Networks" (ICML 2017), splits [0, 1] into equal-width confidence bins
and averages the gap between accuracy and mean confidence in each bin,
weighted by the share of examples in the bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_N_BINS", "ReliabilityBin", "expected_calibration_error", "reliability_bins"]

DEFAULT_N_BINS = 15


class ReliabilityBin(BaseModel):
    """One equal-width confidence bin of a reliability diagram."""

    model_config = ConfigDict(frozen=True)

    lower: float = Field(description="Lower edge of the bin, excluded except for the first bin.")
    upper: float = Field(description="Upper edge of the bin, included.")
    count: int = Field(ge=0, description="Number of examples whose confidence falls in the bin.")
    mean_confidence: float | None = Field(
        description="Mean confidence of the examples in the bin, or None when the bin is empty."
    )
    accuracy: float | None = Field(
        description="Share of correct predictions in the bin, or None when the bin is empty."
    )


def reliability_bins(
    confidences: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    n_bins: int = DEFAULT_N_BINS,
) -> list[ReliabilityBin]:
    """Group predictions into equal-width confidence bins.

    Bin ``i`` covers ``(i / n_bins, (i + 1) / n_bins]``, and the first bin
    also contains confidence 0.

    Args:
        confidences: Confidence of each prediction in [0, 1], usually the
            maximum softmax probability.
        correct: Whether each prediction was correct.
        n_bins: Number of bins.

    Returns:
        The `n_bins` bins in ascending order, empty ones included.

    Raises:
        ValueError: If the inputs are empty, differ in length, contain NaN or
            confidences outside [0, 1], or `n_bins` is not a positive integer.
    """
    scores, hits = _check_calibration_inputs(confidences, correct, n_bins)
    # ceil(c * n_bins) - 1 puts an upper edge into its own bin, so the bins are right-closed.
    indices = np.clip(np.ceil(scores * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    bins = []
    for index in range(n_bins):
        members = indices == index
        count = int(members.sum())
        bins.append(
            ReliabilityBin(
                lower=index / n_bins,
                upper=(index + 1) / n_bins,
                count=count,
                mean_confidence=float(scores[members].mean()) if count else None,
                accuracy=float(hits[members].mean()) if count else None,
            )
        )
    return bins


def expected_calibration_error(
    confidences: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    n_bins: int = DEFAULT_N_BINS,
) -> float:
    """Compute the expected calibration error over equal-width confidence bins.

    Args:
        confidences: Confidence of each prediction in [0, 1], usually the
            maximum softmax probability.
        correct: Whether each prediction was correct.
        n_bins: Number of bins.

    Returns:
        The ECE in [0, 1]. It is 0 when in every bin the accuracy equals the
        mean confidence.

    Raises:
        ValueError: As for `reliability_bins`.
    """
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(item.count for item in bins)
    gap = 0.0
    for item in bins:
        if item.count and item.accuracy is not None and item.mean_confidence is not None:
            gap += item.count / total * abs(item.accuracy - item.mean_confidence)
    return gap


def _check_calibration_inputs(
    confidences: Any, correct: Any, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"`n_bins` must be a positive integer, got {n_bins!r}.")
    scores = np.asarray(confidences, dtype=np.float64)
    hits = np.asarray(correct)
    if scores.ndim != 1 or scores.shape[0] == 0:
        raise ValueError(
            f"`confidences` must be a non-empty 1-D sequence, got shape {scores.shape!r}."
        )
    if hits.shape != scores.shape:
        raise ValueError(
            f"`correct` must have the same shape as `confidences` {scores.shape!r}, "
            f"got {hits.shape!r}. Pass one flag per prediction."
        )
    if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
        bad = scores[~(np.isfinite(scores) & (scores >= 0) & (scores <= 1))][0]
        raise ValueError(f"`confidences` must be probabilities in [0, 1], got {bad!r}.")
    if hits.dtype != np.bool_ and not np.isin(hits, (0, 1)).all():
        raise ValueError(
            f"`correct` must contain booleans or 0/1, got values {np.unique(hits)[:5]!r}."
        )
    return scores, hits.astype(np.float64)
