"""Smaller training sets for quick runs, keeping every label."""

from __future__ import annotations

import random
from collections import defaultdict

from shared.data import DatasetSplits, LabelledText

__all__ = ["sample_training_split"]


def sample_training_split(splits: DatasetSplits, size: int, *, seed: int) -> DatasetSplits:
    """Keep about `size` training examples, the same share of each label; dev and test stay whole.

    Raises:
        ValueError: If `size` is below the number of labels.
    """
    if size < len(splits.labels):
        raise ValueError(
            f"`sample` must be at least the number of labels ({len(splits.labels)}), got {size!r}."
        )
    if size >= len(splits.train):
        return splits
    by_label: dict[str, list[LabelledText]] = defaultdict(list)
    for example in splits.train:
        by_label[example.label].append(example)
    rng = random.Random(seed)
    share = size / len(splits.train)
    kept: list[LabelledText] = []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        kept.extend(group[: max(1, round(len(group) * share))])
    return DatasetSplits(train=kept, dev=splits.dev, test=splits.test, labels=splits.labels)
