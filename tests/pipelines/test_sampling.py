"""`sample_training_split` shrinks only the training split and keeps every label in it."""

from __future__ import annotations

from collections import Counter

import pytest

from pipelines.sampling import sample_training_split
from shared.data import DatasetSplits, LabelledText

# Unbalanced on purpose: the rare label would vanish from a plain random sample.
TRAIN_COUNTS = {"card_arrival": 60, "exchange_rate": 30, "pin_blocked": 8, "top_up_failed": 2}


def _examples(counts: dict[str, int], prefix: str) -> list[LabelledText]:
    return [
        LabelledText(text=f"{prefix} {label} {index}", label=label)
        for label, count in counts.items()
        for index in range(count)
    ]


@pytest.fixture
def splits() -> DatasetSplits:
    """100 training texts over four unbalanced labels, with small dev and test splits."""
    return DatasetSplits(
        train=_examples(TRAIN_COUNTS, "train"),
        dev=_examples(dict.fromkeys(TRAIN_COUNTS, 3), "dev"),
        test=_examples(dict.fromkeys(TRAIN_COUNTS, 5), "test"),
        labels=sorted(TRAIN_COUNTS),
    )


def test_sample_keeps_every_label(splits: DatasetSplits) -> None:
    """Even a label with 2 of 100 texts keeps at least one text in a sample of 10."""
    sampled = sample_training_split(splits, 10, seed=1)

    assert {example.label for example in sampled.train} == set(TRAIN_COUNTS)
    assert sampled.labels == splits.labels


def test_sample_keeps_label_shares(splits: DatasetSplits) -> None:
    """Each label keeps its share of the training split, rounded, with at least one text."""
    sampled = sample_training_split(splits, 50, seed=1)

    counts = Counter(example.label for example in sampled.train)

    assert counts == {"card_arrival": 30, "exchange_rate": 15, "pin_blocked": 4, "top_up_failed": 1}


def test_sample_keeps_dev_and_test_whole(splits: DatasetSplits) -> None:
    """Only the training split shrinks, and dev and test stay the original lists."""
    sampled = sample_training_split(splits, 20, seed=1)

    assert sampled.dev == splits.dev
    assert sampled.test == splits.test


def test_sample_takes_training_texts_only(splits: DatasetSplits) -> None:
    """The sample is a subset of the training texts, without repeats."""
    sampled = sample_training_split(splits, 20, seed=1)

    texts = [example.text for example in sampled.train]

    assert len(texts) == len(set(texts))
    assert set(texts) <= {example.text for example in splits.train}


def test_sample_leaves_input_unchanged(splits: DatasetSplits) -> None:
    """Sampling does not reorder or shrink the caller's training list."""
    original = list(splits.train)

    sample_training_split(splits, 20, seed=1)

    assert splits.train == original


def test_sample_repeats_for_same_seed(splits: DatasetSplits) -> None:
    """The same seed picks the same texts and another seed picks others."""
    first = sample_training_split(splits, 20, seed=3)
    second = sample_training_split(splits, 20, seed=3)
    other = sample_training_split(splits, 20, seed=4)

    assert first.train == second.train
    assert first.train != other.train


@pytest.mark.parametrize("size", [100, 500])
def test_sample_unchanged_for_large_size(splits: DatasetSplits, size: int) -> None:
    """A size at or above the training split's length keeps the splits unchanged."""
    assert sample_training_split(splits, size, seed=1) is splits


@pytest.mark.parametrize("size", [0, 3])
def test_reject_size_below_label_count(splits: DatasetSplits, size: int) -> None:
    """A size below the number of labels cannot keep every label, so it raises ValueError."""
    with pytest.raises(ValueError, match=r"at least the number of labels \(4\)"):
        sample_training_split(splits, size, seed=1)


def test_accept_size_equal_to_label_count(splits: DatasetSplits) -> None:
    """A size equal to the number of labels is allowed and keeps every label."""
    sampled = sample_training_split(splits, 4, seed=1)

    assert {example.label for example in sampled.train} == set(TRAIN_COUNTS)
