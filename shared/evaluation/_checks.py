"""Argument checks shared by the evaluation modules.

Each check converts its argument to a numpy array and raises `ValueError` or
`TypeError` with a message that names the argument, shows the received value
or shape, and suggests a fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Softmax outputs computed in float16 or float32 drift from 1 by up to about
# 1e-3 per row, so rows within this distance of 1 count as probabilities.
ROW_SUM_TOLERANCE = 1e-3


def check_probabilities(probabilities: Any, *, name: str) -> np.ndarray:
    """Return `probabilities` as a float64 array of shape (n, C) with rows that sum to 1.

    Args:
        probabilities: Class probabilities, one row per example.
        name: The argument name to show in error messages.

    Returns:
        The probabilities as a float64 array.

    Raises:
        ValueError: If the array is not numeric, empty, not two-dimensional, has fewer than
            two columns, contains NaN, infinities or values outside [0, 1], or
            has a row whose sum differs from 1 by more than `ROW_SUM_TOLERANCE`.
    """
    try:
        array = np.asarray(probabilities, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"`{name}` must be a numeric array of shape (n_examples, n_classes) "
            f"with rows of equal length: {exc}"
        ) from exc
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (n_examples, n_classes), "
            f"got shape {array.shape!r}. Stack the per-example rows into one array."
        )
    if array.shape[0] == 0:
        raise ValueError(f"`{name}` is empty (shape {array.shape!r}). Pass at least one example.")
    if array.shape[1] < 2:
        raise ValueError(
            f"`{name}` must have one column per class and at least two classes, "
            f"got shape {array.shape!r}."
        )
    _check_probability_values(array, name=name)
    return array


def _check_probability_values(array: np.ndarray, *, name: str) -> None:
    if not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ValueError(
            f"`{name}` contains NaN or infinite values, first in row {row}: {array[row]!r}. "
            "Check the model outputs for overflow before evaluating."
        )
    outside = (array < 0.0) | (array > 1.0)
    if outside.any():
        row = int(np.flatnonzero(outside.any(axis=1))[0])
        raise ValueError(
            f"`{name}` must contain probabilities in [0, 1], row {row} is {array[row]!r}. "
            "Apply a softmax to the logits first."
        )
    sums = array.sum(axis=1)
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"Each row of `{name}` must sum to 1 (within {ROW_SUM_TOLERANCE}), "
            f"row {row} sums to {float(sums[row])!r}. Apply a softmax to the logits first."
        )


def check_class_indices(values: Any, *, name: str, n_examples: int, n_classes: int) -> np.ndarray:
    """Return `values` as an int64 array of `n_examples` class indices in [0, n_classes).

    Integral floats such as ``3.0`` are accepted because data frames often
    store labels as floats.

    Raises:
        TypeError: If the values are not numbers.
        ValueError: If the length differs from `n_examples`, or a value is not
            a whole number in [0, n_classes).
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D sequence of class indices, got shape {array.shape!r}."
        )
    if array.shape[0] != n_examples:
        raise ValueError(
            f"`{name}` has {array.shape[0]} entries but the probabilities have "
            f"{n_examples} rows. Pass one true class index per probability row."
        )
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"`{name}` must contain integer class indices, got dtype {array.dtype!s}. "
            "Map label names to indices with the model's label2id first."
        )
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            bad = array[~whole][0]
            raise ValueError(f"`{name}` must contain whole-number class indices, got {bad!r}.")
    indices = array.astype(np.int64)
    outside = (indices < 0) | (indices >= n_classes)
    if outside.any():
        raise ValueError(
            f"`{name}` must contain class indices in [0, {n_classes - 1}], "
            f"got {int(indices[outside][0])!r}. Check that the labels match the "
            "columns of the probabilities."
        )
    return indices


def check_labels(labels: Sequence[str], *, n_classes: int) -> list[str]:
    """Return `labels` as a list of `n_classes` distinct strings.

    Raises:
        TypeError: If a label is not a string.
        ValueError: If the count differs from `n_classes` or a name repeats.
    """
    if isinstance(labels, str):
        raise TypeError(f"`labels` must be a sequence of label names, got the string {labels!r}.")
    names = list(labels)
    if len(names) != n_classes:
        raise ValueError(
            f"`labels` has {len(names)} names but the probabilities have {n_classes} "
            "columns. Pass one name per column, in column order."
        )
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"`labels` must contain strings, got {name!r}.")
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"`labels` must be distinct, got repeated names {repeated!r}.")
    return names


def check_fraction(value: float, *, name: str, allow_one: bool = True) -> float:
    """Return `value` as a float in [0, 1], or in [0, 1) when `allow_one` is false.

    Raises:
        ValueError: If the value is NaN or outside the allowed range.
    """
    number = float(value)
    upper_ok = number <= 1.0 if allow_one else number < 1.0
    if not (number >= 0.0 and upper_ok):
        allowed = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"`{name}` must be in {allowed}, got {value!r}.")
    return number
