"""Fixtures that build probability matrices with chosen predictions and confidences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

MakeRows = Callable[[Sequence[int], Sequence[float], int], np.ndarray]


def build_rows(
    predicted: Sequence[int], confidences: Sequence[float], n_classes: int
) -> np.ndarray:
    """Return rows whose argmax is `predicted` with max probability `confidences`.

    The rest of each row's mass is spread evenly over the other classes, so
    every confidence must exceed 1 / n_classes for the argmax to hold.
    """
    rows = np.empty((len(predicted), n_classes))
    for index, (label, confidence) in enumerate(zip(predicted, confidences, strict=True)):
        rows[index] = (1.0 - confidence) / (n_classes - 1)
        rows[index, label] = confidence
    return rows


@pytest.fixture
def make_rows() -> MakeRows:
    return build_rows


@pytest.fixture
def random_probabilities() -> Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]:
    """Return a factory of (probabilities, y_true) from a seeded, moderately accurate model."""

    def build(n_examples: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        y_true = rng.integers(0, n_classes, n_examples)
        logits = rng.normal(size=(n_examples, n_classes))  # (n, C)
        logits[np.arange(n_examples), y_true] += 1.5
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities, y_true

    return build
