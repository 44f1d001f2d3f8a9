"""Tests of the labelled-text type, text normalisation and leak-free splits."""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Any

import pytest

import shared.data
from shared.data import (
    DatasetSplits,
    LabelledText,
    deduplicate,
    deduplicate_texts,
    normalize_text,
    split_examples,
    text_hash,
)
from shared.errors import DataError

SPLITS_LOGGER = "shared.data.splits"


def _make_examples(counts: dict[str, int]) -> list[LabelledText]:
    """Build distinct texts, `counts[label]` of them per label."""
    return [
        LabelledText(text=f"{label} example number {index}", label=label)
        for label, count in counts.items()
        for index in range(count)
    ]


def _hashes_by_split(splits: DatasetSplits) -> dict[str, set[str]]:
    return {
        "train": {text_hash(example.text) for example in splits.train},
        "dev": {text_hash(example.text) for example in splits.dev},
        "test": {text_hash(example.text) for example in splits.test},
    }


def _assert_no_shared_hash(splits: DatasetSplits) -> None:
    hashes = _hashes_by_split(splits)
    assert not hashes["train"] & hashes["dev"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["dev"] & hashes["test"]


def test_public_names_of_shared_data() -> None:
    assert sorted(shared.data.__all__) == [
        "DatasetSplits",
        "LabelledText",
        "SPLIT_NAMES",
        "deduplicate",
        "deduplicate_texts",
        "normalize_text",
        "split_examples",
        "text_hash",
    ]


# --- normalisation and hashes ---


def test_normalize_text_folds_case_width_and_whitespace() -> None:
    assert normalize_text("  Hello\t\n  WORLD  ") == "hello world"
    assert normalize_text("ＡＢＣ　１２３") == "abc 123"
    assert normalize_text("Straße") == "strasse"
    assert normalize_text(" \u3000\t ") == ""


def test_normalize_text_keeps_chinese_characters() -> None:
    # Full-width punctuation and the ideographic space become ASCII. The Han
    # characters stay unchanged.
    assert normalize_text("我的卡　还没到，怎么办？") == "我的卡 还没到,怎么办?"
    assert normalize_text("我的 Visa 卡  被 BLOCKED 了") == "我的 visa 卡 被 blocked 了"


def test_text_hash_matches_near_duplicates() -> None:
    variants = ["Card not working", "  card   NOT working\n", "Ｃａｒｄ　ｎｏｔ　ｗｏｒｋｉｎｇ"]
    assert len({text_hash(text) for text in variants}) == 1
    assert text_hash("card not working") != text_hash("card not working!")
    assert len(text_hash("x")) == 64


def test_labelled_text_copies_meta_and_hashes() -> None:
    meta = {"entity": "Sebi"}
    example = LabelledText(text="Sebi fines broker", label="negative", meta=meta)
    meta["entity"] = "changed"

    assert example.meta == {"entity": "Sebi"}
    assert LabelledText(text="a", label="b").meta == {}
    assert hash(example) == hash(LabelledText(text="Sebi fines broker", label="negative"))
    with pytest.raises(AttributeError):
        example.text = "other"  # type: ignore[misc]


def test_deduplicate_keeps_first_per_text_and_label() -> None:
    examples = [
        LabelledText(text="Rates rise", label="positive", meta={"row": "1"}),
        LabelledText(text="RATES  rise", label="positive", meta={"row": "2"}),
        LabelledText(text="rates rise", label="negative", meta={"row": "3"}),
    ]
    kept = deduplicate(examples)
    assert [example.meta["row"] for example in kept] == ["1", "3"]


def test_deduplicate_texts_drops_repeats_empty_and_excluded() -> None:
    texts = ["Alpha", "alpha ", "   ", "Beta", "ＧＡＭＭＡ", "gamma"]
    assert deduplicate_texts(texts) == ["Alpha", "Beta", "ＧＡＭＭＡ"]
    assert deduplicate_texts(texts, exclude=["BETA"]) == ["Alpha", "ＧＡＭＭＡ"]


# --- determinism ---


def test_split_examples_is_deterministic_for_seed() -> None:
    examples = _make_examples({"a": 200, "b": 120, "c": 80})
    first = split_examples(examples, seed=7)
    second = split_examples(examples, seed=7)

    assert first == second
    assert first.fingerprint() == second.fingerprint()


def test_split_examples_ignores_input_order() -> None:
    examples = _make_examples({"a": 200, "b": 120, "c": 80})
    shuffled = list(examples)
    random.Random(0).shuffle(shuffled)

    assert split_examples(examples).fingerprint() == split_examples(shuffled).fingerprint()


def test_split_examples_differs_across_seeds() -> None:
    examples = _make_examples({"a": 200, "b": 120, "c": 80})
    first = split_examples(examples, seed=1)
    second = split_examples(examples, seed=2)

    assert first.fingerprint() != second.fingerprint()
    assert first.summary() == second.summary()


def test_split_examples_keeps_input_order_within_split() -> None:
    examples = _make_examples({"a": 100, "b": 100})
    position = {example.text: index for index, example in enumerate(examples)}
    splits = split_examples(examples)

    for split in (splits.train, splits.dev, splits.test):
        positions = [position[example.text] for example in split]
        assert positions == sorted(positions)


# --- stratification ---


def test_split_examples_stratifies_labels() -> None:
    counts = {"common": 700, "medium": 240, "rare": 60}
    splits = split_examples(_make_examples(counts), dev_fraction=0.1, test_fraction=0.2)
    total = sum(counts.values())

    for name, split, fraction in (
        ("train", splits.train, 0.7),
        ("dev", splits.dev, 0.1),
        ("test", splits.test, 0.2),
    ):
        label_counts = Counter(example.label for example in split)
        assert len(split) == pytest.approx(total * fraction, abs=3), name
        for label, count in counts.items():
            share = label_counts[label] / len(split)
            assert share == pytest.approx(count / total, abs=0.02), (name, label)


def test_split_examples_summary_and_labels() -> None:
    splits = split_examples(_make_examples({"b": 50, "a": 50}))

    assert splits.summary() == {"train": 80, "dev": 10, "test": 10}
    assert splits.labels == ["a", "b"]


def test_split_examples_without_dev_or_test() -> None:
    splits = split_examples(_make_examples({"a": 50, "b": 50}), dev_fraction=0.0, test_fraction=0.0)

    assert splits.summary() == {"train": 100, "dev": 0, "test": 0}


def test_split_examples_keeps_rare_labels_in_train(caplog: pytest.LogCaptureFixture) -> None:
    # Filling train, dev and test needs three distinct texts per label.
    examples = [*_make_examples({"big": 100}), *_make_examples({"tiny": 2})]
    caplog.set_level(logging.INFO, logger=SPLITS_LOGGER)

    splits = split_examples(examples)

    assert Counter(example.label for example in splits.train)["tiny"] == 2
    assert "tiny" not in {example.label for example in splits.dev + splits.test}
    assert "tiny" in splits.labels
    assert any("stay in train: tiny" in message for message in caplog.messages)


def test_split_examples_fills_each_split_for_small_labels() -> None:
    splits = split_examples(_make_examples({"big": 100, "small": 3}))

    for split in (splits.train, splits.dev, splits.test):
        assert Counter(example.label for example in split)["small"] == 1


# --- leak-free groups ---


def test_split_examples_keeps_near_duplicates_together() -> None:
    examples = _make_examples({"a": 150, "b": 150})
    # Each variant differs from an existing text only in case, spacing or width.
    variants = []
    for example in examples[::5]:
        variants.append(LabelledText(text=example.text.upper(), label=example.label))
        variants.append(LabelledText(text=f"  {example.text}\t ", label=example.label))
        wide = example.text.translate({code: code + 0xFEE0 for code in range(0x21, 0x7F)})
        variants.append(LabelledText(text=wide.replace(" ", "\u3000"), label=example.label))

    splits = split_examples([*examples, *variants])

    assert sum(splits.summary().values()) == len(examples) + len(variants)
    _assert_no_shared_hash(splits)


def test_split_examples_keeps_conflicting_group_whole(caplog: pytest.LogCaptureFixture) -> None:
    examples = _make_examples({"pos": 60, "neg": 60})
    conflict = [
        LabelledText(text="Profit flat", label="pos"),
        LabelledText(text="profit FLAT", label="neg"),
        LabelledText(text="Profit  flat", label="neg"),
    ]
    caplog.set_level(logging.INFO, logger=SPLITS_LOGGER)

    for seed in range(10):
        splits = split_examples([*examples, *conflict], seed=seed)
        members = [
            name
            for name in ("train", "dev", "test")
            for example in getattr(splits, name)
            if normalize_text(example.text) == "profit flat"
        ]
        assert len(members) == 3
        assert len(set(members)) == 1
        _assert_no_shared_hash(splits)

    assert any("1 groups of equal normalised text" in message for message in caplog.messages)


def test_split_examples_handles_chinese_and_mixed_text() -> None:
    examples = [
        LabelledText(text=f"我的卡还没到，第{index}次询问", label="card_arrival")
        for index in range(40)
    ] + [
        LabelledText(text=f"如何 top up 我的 account？编号{index}", label="top_up")
        for index in range(40)
    ]
    near_duplicates = [
        LabelledText(text="我的卡还没到,第1次询问", label="card_arrival"),
        LabelledText(text="我的卡还没到，第１次询问 ", label="card_arrival"),
        LabelledText(text="如何　TOP UP 我的 Account?编号2", label="top_up"),
    ]

    splits = split_examples([*examples, *near_duplicates], seed=3)

    assert sum(splits.summary().values()) == 83
    assert splits.labels == ["card_arrival", "top_up"]
    _assert_no_shared_hash(splits)
    assert text_hash(near_duplicates[0].text) == text_hash(examples[1].text)
    assert text_hash(near_duplicates[2].text) == text_hash(examples[42].text)


# --- explicit test split ---


def test_split_examples_removes_explicit_test_leaks(caplog: pytest.LogCaptureFixture) -> None:
    train_pool = _make_examples({"a": 100, "b": 100})
    test = [
        LabelledText(text="A example number 3", label="a"),
        LabelledText(text="ｂ example number 7 ", label="b"),
        LabelledText(text="a fresh test text", label="a"),
    ]
    caplog.set_level(logging.INFO, logger=SPLITS_LOGGER)

    splits = split_examples(train_pool, test_fraction=0.5, explicit_test=test)

    assert splits.test == test
    assert len(splits.train) + len(splits.dev) == 198
    assert len(splits.dev) == 20
    _assert_no_shared_hash(splits)
    assert any("dropped 2 train/dev examples" in message for message in caplog.messages)


def test_split_examples_ignores_test_fraction_with_explicit_test() -> None:
    test = [LabelledText(text="held-out text", label="a")]
    splits = split_examples(_make_examples({"a": 20}), test_fraction=2.0, explicit_test=test)

    assert splits.summary() == {"train": 18, "dev": 2, "test": 1}


def test_split_examples_rejects_empty_explicit_test() -> None:
    with pytest.raises(DataError, match="`explicit_test` is empty"):
        split_examples(_make_examples({"a": 10}), explicit_test=[])


def test_split_examples_rejects_input_that_all_leaks() -> None:
    examples = _make_examples({"a": 5})
    with pytest.raises(DataError, match="No example is left"):
        split_examples(
            examples, explicit_test=[LabelledText(e.text.upper(), "a") for e in examples]
        )


# --- fingerprint ---


def test_fingerprint_ignores_order_and_meta() -> None:
    example = LabelledText(text="Text one", label="a", meta={"id": "1"})
    other = LabelledText(text="Text two", label="b")
    base = DatasetSplits(train=[example, other], dev=[], test=[], labels=["a", "b"])
    reordered = DatasetSplits(
        train=[other, LabelledText(text="text ONE", label="a")], dev=[], test=[], labels=["a", "b"]
    )
    moved = DatasetSplits(train=[example], dev=[other], test=[], labels=["a", "b"])
    relabelled = DatasetSplits(
        train=[example, LabelledText(text="Text two", label="c")], dev=[], test=[], labels=[]
    )

    assert base.fingerprint() == reordered.fingerprint()
    assert base.fingerprint() != moved.fingerprint()
    assert base.fingerprint() != relabelled.fingerprint()


# --- input checks ---


def test_split_examples_rejects_empty_input() -> None:
    with pytest.raises(DataError, match="`examples` is empty"):
        split_examples([])


def test_split_examples_drops_empty_texts(caplog: pytest.LogCaptureFixture) -> None:
    examples = [*_make_examples({"a": 20}), LabelledText("   ", "a"), LabelledText("\u3000", "a")]
    caplog.set_level(logging.INFO, logger=SPLITS_LOGGER)

    splits = split_examples(examples)

    assert sum(splits.summary().values()) == 20
    assert any("dropped 2 examples with empty text" in message for message in caplog.messages)


def test_split_examples_rejects_only_empty_texts() -> None:
    with pytest.raises(DataError, match="No example is left"):
        split_examples([LabelledText(" ", "a"), LabelledText("", "b")])


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("dev_fraction", -0.1),
        ("dev_fraction", 1.0),
        ("test_fraction", 1.5),
        ("test_fraction", float("nan")),
    ],
)
def test_split_examples_rejects_fraction_out_of_range(argument: str, value: float) -> None:
    options: dict[str, Any] = {argument: value}
    with pytest.raises(ValueError, match=f"`{argument}` must be in"):
        split_examples(_make_examples({"a": 10}), **options)


def test_split_examples_rejects_fractions_summing_to_one() -> None:
    with pytest.raises(ValueError, match="dev_fraction \\+ test_fraction"):
        split_examples(_make_examples({"a": 10}), dev_fraction=0.5, test_fraction=0.5)


def test_split_examples_rejects_non_numeric_fraction() -> None:
    with pytest.raises(TypeError, match="`dev_fraction`"):
        split_examples(_make_examples({"a": 10}), dev_fraction="0.1")  # type: ignore[arg-type]


def test_split_examples_rejects_non_string_text() -> None:
    examples = [*_make_examples({"a": 3}), LabelledText(text=None, label="a")]  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"`examples\[3\]\.text` must be a str, got NoneType"):
        split_examples(examples)


def test_split_examples_rejects_empty_label() -> None:
    with pytest.raises(DataError, match=r"`examples\[0\]\.label`"):
        split_examples([LabelledText(text="some text", label="")])


def test_split_examples_rejects_other_types() -> None:
    with pytest.raises(TypeError, match=r"`examples\[0\]` must be a LabelledText"):
        split_examples([("text", "label")])  # type: ignore[list-item]
