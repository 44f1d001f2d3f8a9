"""Seeded, stratified and leak-free train/dev/test splits of labelled texts.

Examples whose normalised texts are equal (see `normalize_text`) form a group, and a
group always goes to exactly one split. Near-duplicates that differ only in case,
whitespace or full-width characters therefore never sit on both sides of a split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Literal

from shared.data.examples import LabelledText, normalize_text, text_hash
from shared.errors import DataError

__all__ = ["SPLIT_NAMES", "DatasetSplits", "split_examples"]

logger = logging.getLogger(__name__)

SplitName = Literal["train", "dev", "test"]
SPLIT_NAMES: tuple[SplitName, ...] = ("train", "dev", "test")

# Maximum number of label names that one log line lists before it shows a count.
_MAX_LOGGED_LABELS = 10


@dataclass
class DatasetSplits:
    """The train, dev and test splits of one data set.

    Attributes:
        train: Examples to fit the model on.
        dev: Examples for model selection and early stopping.
        test: Held-out examples for the final evaluation; may be empty.
        labels: Sorted names of every label that occurs in any split.
    """

    train: list[LabelledText]
    dev: list[LabelledText]
    test: list[LabelledText] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Return a SHA-256 hex digest that identifies the split contents.

        The digest covers the sorted (text hash, label, split name) triples, so it does
        not depend on the order of examples within a split or on their `meta`.
        """
        triples = sorted(
            (text_hash(example.text), example.label, name)
            for name in SPLIT_NAMES
            for example in getattr(self, name)
        )
        payload = json.dumps(triples, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def summary(self) -> dict[str, int]:
        """Return the number of examples in each split, keyed by split name."""
        return {name: len(getattr(self, name)) for name in SPLIT_NAMES}


@dataclass
class _Group:
    """Examples that share one normalised text, with the label of their stratum."""

    digest: str
    positions: list[int]
    label: str
    is_conflicting: bool


def split_examples(
    examples: Iterable[LabelledText],
    *,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    explicit_test: Iterable[LabelledText] | None = None,
) -> DatasetSplits:
    """Split labelled texts into train, dev and test, stratified by label and leak-free.

    Examples with equal normalised text form a group that goes to exactly one split.
    Within each label, the groups are sorted by hash and shuffled with a generator
    seeded from `seed` and the label, so the split that an example goes to does not
    depend on the input order. A group whose examples disagree on the label
    is assigned in the stratum of its majority label, and each example keeps its own
    label. A label with fewer groups than the splits it has to fill (train plus each
    split with a fraction above 0) keeps all its groups in train. Examples keep their
    input order within each split. Examples with empty or whitespace-only text are
    dropped.

    Args:
        examples: The labelled texts to split.
        dev_fraction: Share of each label's groups that goes to dev, in [0, 1).
        test_fraction: Share of each label's groups that goes to test, in [0, 1).
            Ignored when `explicit_test` is given.
        seed: Seed of the shuffle.
        explicit_test: A fixed test split, such as a data set's official test file.
            It is used unchanged, every train or dev candidate whose normalised text
            also occurs in it is dropped, and dev is carved from the rest.

    Returns:
        The splits with the sorted label names.

    Raises:
        ValueError: If a fraction in use is outside [0, 1), or if `dev_fraction +
            test_fraction` is 1 or more without `explicit_test`.
        TypeError: If a fraction is not a number or an item is not a `LabelledText`.
        DataError: If `examples` or `explicit_test` is empty, if no example is left
            after dropping empty texts and test duplicates, or if a text or label is
            not a string.
    """
    _check_fraction("dev_fraction", dev_fraction)
    test: list[LabelledText] = []
    if explicit_test is not None:
        test = _validate_examples(explicit_test, argument="explicit_test")
        test_fraction = 0.0
    else:
        _check_fraction("test_fraction", test_fraction)
        if dev_fraction + test_fraction >= 1.0:
            raise ValueError(
                "`dev_fraction + test_fraction` must be below 1 so that train keeps examples, "
                f"got {dev_fraction!r} + {test_fraction!r}; lower one of them."
            )

    candidates = _drop_empty_texts(_validate_examples(examples, argument="examples"))
    if explicit_test is not None:
        candidates = _drop_test_duplicates(candidates, test)
    if not candidates:
        raise DataError(
            "No example is left to split after dropping empty texts and texts that occur "
            "in `explicit_test`; check that `examples` contains the training data."
        )

    groups = _group_by_text(candidates)
    split_of_group = _assign_groups(
        groups, dev_fraction=dev_fraction, test_fraction=test_fraction, seed=seed
    )
    splits = _build_splits(candidates, groups, split_of_group, test)
    _log_split_result(splits)
    return splits


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"`{name}` must be a number in [0, 1), got {value!r}.")
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"`{name}` must be in [0, 1), got {value!r}; pass for example 0.1 for 10%."
        )


def _validate_examples(examples: Iterable[LabelledText], *, argument: str) -> list[LabelledText]:
    """Return `examples` as a list after checking that each text and label is a string."""
    checked = list(examples)
    if not checked:
        raise DataError(f"`{argument}` is empty; pass at least one labelled text.")
    for index, example in enumerate(checked):
        if not isinstance(example, LabelledText):
            raise TypeError(
                f"`{argument}[{index}]` must be a LabelledText, got {type(example).__name__}: "
                f"{example!r}."
            )
        if not isinstance(example.text, str):
            raise DataError(
                f"`{argument}[{index}].text` must be a str, got {type(example.text).__name__}: "
                f"{example.text!r}; convert or drop that row when reading the data."
            )
        if not isinstance(example.label, str) or not example.label:
            raise DataError(
                f"`{argument}[{index}].label` must be a non-empty str, got {example.label!r}; "
                "fix or drop that row when reading the data."
            )
    return checked


def _drop_empty_texts(examples: list[LabelledText]) -> list[LabelledText]:
    kept = [example for example in examples if normalize_text(example.text)]
    if len(kept) < len(examples):
        logger.info("split: dropped %d examples with empty text", len(examples) - len(kept))
    return kept


def _drop_test_duplicates(
    examples: list[LabelledText], test: Sequence[LabelledText]
) -> list[LabelledText]:
    test_hashes = {text_hash(example.text) for example in test}
    kept = [example for example in examples if text_hash(example.text) not in test_hashes]
    logger.info(
        "split: dropped %d train/dev examples whose text occurs in the explicit test split",
        len(examples) - len(kept),
    )
    return kept


def _group_by_text(examples: Sequence[LabelledText]) -> list[_Group]:
    """Group positions by text hash and give each group its majority label.

    A tie between labels goes to the label name that sorts first, so the choice does
    not depend on the input order.
    """
    positions_by_hash: dict[str, list[int]] = {}
    for position, example in enumerate(examples):
        positions_by_hash.setdefault(text_hash(example.text), []).append(position)

    groups: list[_Group] = []
    for digest, positions in positions_by_hash.items():
        counts = Counter(examples[position].label for position in positions)
        label = min(counts, key=lambda name: (-counts[name], name))
        groups.append(
            _Group(digest=digest, positions=positions, label=label, is_conflicting=len(counts) > 1)
        )

    conflicting = sum(group.is_conflicting for group in groups)
    if conflicting:
        logger.info(
            "split: %d groups of equal normalised text have conflicting labels; "
            "each is kept whole in its majority label's stratum",
            conflicting,
        )
    return groups


def _assign_groups(
    groups: Sequence[_Group], *, dev_fraction: float, test_fraction: float, seed: int
) -> list[SplitName]:
    """Return the split name of each group, in the order of `groups`."""
    indices_by_label: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        indices_by_label.setdefault(group.label, []).append(index)

    split_of_group: list[SplitName] = ["train"] * len(groups)
    train_only_labels: list[str] = []
    for label in sorted(indices_by_label):
        indices = indices_by_label[label]
        sizes = _stratum_sizes(len(indices), dev_fraction=dev_fraction, test_fraction=test_fraction)
        if sizes is None:
            train_only_labels.append(label)
            continue

        # Sorting by hash first makes the shuffle independent of the input order, and a
        # generator per label keeps one label's assignment independent of the others.
        indices.sort(key=lambda index: groups[index].digest)
        random.Random(f"{seed}:{label}").shuffle(indices)
        dev_size, test_size = sizes
        for index in indices[:test_size]:
            split_of_group[index] = "test"
        for index in indices[test_size : test_size + dev_size]:
            split_of_group[index] = "dev"

    _log_train_only_labels(train_only_labels)
    return split_of_group


def _stratum_sizes(
    group_count: int, *, dev_fraction: float, test_fraction: float
) -> tuple[int, int] | None:
    """Return the (dev, test) group counts of one label, or None to keep it all in train.

    Each split with a fraction above 0 gets at least one group and train keeps at least
    one, so a label needs at least one group per split that it fills.
    """
    requested = [fraction for fraction in (dev_fraction, test_fraction) if fraction > 0]
    if group_count < 1 + len(requested):
        return None

    dev_size = max(1, _round_half_up(group_count * dev_fraction)) if dev_fraction > 0 else 0
    test_size = max(1, _round_half_up(group_count * test_fraction)) if test_fraction > 0 else 0
    while dev_size + test_size > group_count - 1:
        if dev_size >= test_size:
            dev_size -= 1
        else:
            test_size -= 1
    return dev_size, test_size


def _round_half_up(value: float) -> int:
    return int(value + 0.5)


def _build_splits(
    examples: Sequence[LabelledText],
    groups: Sequence[_Group],
    split_of_group: Sequence[SplitName],
    test: list[LabelledText],
) -> DatasetSplits:
    split_of_position: dict[int, SplitName] = {}
    for group, split_name in zip(groups, split_of_group, strict=True):
        for position in group.positions:
            split_of_position[position] = split_name

    members: dict[SplitName, list[LabelledText]] = {"train": [], "dev": [], "test": []}
    for position, example in enumerate(examples):
        members[split_of_position[position]].append(example)
    members["test"].extend(test)

    labels = sorted({example.label for split in members.values() for example in split})
    return DatasetSplits(
        train=members["train"], dev=members["dev"], test=members["test"], labels=labels
    )


def _log_train_only_labels(labels: Sequence[str]) -> None:
    if not labels:
        return
    shown = ", ".join(labels[:_MAX_LOGGED_LABELS])
    more = len(labels) - _MAX_LOGGED_LABELS
    suffix = f" and {more} more" if more > 0 else ""
    logger.info(
        "split: %d labels have too few distinct texts for every split and stay in train: %s%s",
        len(labels),
        shown,
        suffix,
    )


def _log_split_result(splits: DatasetSplits) -> None:
    missing = sorted(
        {example.label for example in splits.test} - {example.label for example in splits.train}
    )
    if missing:
        logger.warning(
            "split: %d test labels have no train example, so no model can predict them: %s",
            len(missing),
            ", ".join(missing[:_MAX_LOGGED_LABELS]),
        )
    counts = splits.summary()
    logger.info(
        "split: train=%d dev=%d test=%d labels=%d fingerprint=%s",
        counts["train"],
        counts["dev"],
        counts["test"],
        len(splits.labels),
        splits.fingerprint()[:12],
    )
