"""Tests for reciprocal rank fusion."""

from __future__ import annotations

import pytest

from shared.errors import RetrievalError
from shared.retrieval import reciprocal_rank_fusion


def test_reciprocal_rank_fusion_hand_computed_example() -> None:
    """Scores are sums of 1 / (k + rank) over the rankings, ranks counted from 1.

    With k = 60: id 2 is 2nd and 1st, 1/62 + 1/61; id 1 is 1st only, 1/61;
    id 3 is 3rd and 2nd, 1/63 + 1/62; id 4 is 3rd in the second ranking, 1/63.
    """
    fused = reciprocal_rank_fusion([[1, 2, 3], [2, 3, 4]])

    assert [document_id for document_id, _ in fused] == [2, 3, 1, 4]
    scores = dict(fused)
    assert scores[2] == pytest.approx(1 / 62 + 1 / 61)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 62)
    assert scores[1] == pytest.approx(1 / 61)
    assert scores[4] == pytest.approx(1 / 63)


def test_reciprocal_rank_fusion_applies_weights() -> None:
    """A weight multiplies its ranking's contribution: weight 3 on the second list lifts id 9."""
    fused = reciprocal_rank_fusion([[8, 9], [9, 8]], k=0, weights=[1.0, 3.0])

    assert fused == [(9, pytest.approx(1 / 2 + 3 / 1)), (8, pytest.approx(1 / 1 + 3 / 2))]


def test_reciprocal_rank_fusion_counts_repeated_id_once() -> None:
    """An id repeated within one ranking counts only at its first rank."""
    fused = reciprocal_rank_fusion([[5, 5, 6]], k=0)

    assert fused == [(5, pytest.approx(1.0)), (6, pytest.approx(1 / 3))]


def test_reciprocal_rank_fusion_breaks_ties_by_first_appearance() -> None:
    """Equal scores keep the order in which ids first appear."""
    fused = reciprocal_rank_fusion([[7, 3], [3, 7]])

    assert [document_id for document_id, _ in fused] == [7, 3]


def test_reciprocal_rank_fusion_empty_input() -> None:
    """No rankings, or only empty ones, fuse to an empty list."""
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": -1}, "`k` must be an integer >= 0, got -1"),
        ({"weights": [1.0]}, "one value per ranking \\(2\\), got 1"),
        ({"weights": [1.0, -0.5]}, r"`weights\[1\]` must be a finite number >= 0"),
        ({"weights": [1.0, float("nan")]}, r"`weights\[1\]` must be a finite number >= 0"),
    ],
)
def test_reciprocal_rank_fusion_rejects_invalid_arguments(
    kwargs: dict[str, object], message: str
) -> None:
    """A negative `k` or a bad weight list raises `RetrievalError`."""
    with pytest.raises(RetrievalError, match=message):
        reciprocal_rank_fusion([[1], [2]], **kwargs)  # type: ignore[arg-type]
