"""Serving a trained classifier: per-item errors, truncation, batching and registry loading.

The tests live beside the training tests because they serve the `head` model that the
session fixture `trained_models` in this folder's conftest trains.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shared.data import DatasetSplits
from shared.errors import IntegrityError
from shared.inference import (
    Prediction,
    TextClassifier,
    clear_classifier_cache,
    iter_length_buckets,
    load_text_classifier,
)
from shared.registry import ModelVersion, promote_version, register_model
from shared.storage import upgrade_database
from shared.training.classifier import TrainedClassifier

MODEL_NAME = "banking-subset-intent"
HUGE_TEXT = ("My new card has still not arrived after two weeks. " * 1000)[:50_000]
CHINESE_TEXT = "我的银行卡丢了，请帮我冻结账户。"
MIXED_TEXT = "我的 card 还没有到，can you check the delivery status?"
EMOJI_TEXT = "Top up failed again 😡💳 why??"
NORMAL_TEXTS = ("What is the exchange rate for euros?", "My PIN is blocked, please help.")
MAX_PROBABILITY_DIFFERENCE = 1e-5


@pytest.fixture(scope="session")
def _head_classifier(trained_models: dict[str, TrainedClassifier]) -> TextClassifier:
    """The `head` model folder loaded once per session; tests take deep copies."""
    return TextClassifier.from_folder(trained_models["head"].model_dir)


@pytest.fixture
def classifier(_head_classifier: TextClassifier) -> TextClassifier:
    """A private copy of the loaded `head` classifier that a test may change."""
    return copy.deepcopy(_head_classifier)


@pytest.fixture
def varied_texts(banking_subset: DatasetSplits) -> list[str]:
    """50 real test texts cut or repeated to 1 to about 100 words.

    The model keeps 32 tokens, so the longer texts are truncated.
    """
    sources = [example.text for example in banking_subset.test[::4][:50]]
    texts = []
    for index, text in enumerate(sources):
        words = " ".join([text] * (1 + index % 7)).split()
        texts.append(" ".join(words[: 1 + index * 2]))
    return texts


@pytest.fixture
def registered_head(trained_models: dict[str, TrainedClassifier]) -> Iterator[ModelVersion]:
    """The `head` folder registered as version 1 in the test's own database."""
    upgrade_database()
    trained = trained_models["head"]
    clear_classifier_cache()
    yield register_model(
        name=MODEL_NAME,
        task="sequence-classification",
        model_dir=trained.model_dir,
        base_model=trained.config.base_model,
        method="head",
        label_map=trained.label2id,
    )
    clear_classifier_cache()


# predict: one result per input, in input order


def _mixed_batch() -> list[object]:
    return ["", " \t\n ", None, HUGE_TEXT, CHINESE_TEXT, MIXED_TEXT, EMOJI_TEXT, *NORMAL_TEXTS]


INVALID_POSITIONS = (0, 1, 2)
VALID_POSITIONS = (3, 4, 5, 6, 7, 8)


def test_predict_returns_one_result_per_input(classifier: TextClassifier) -> None:
    """A batch of nine items, three of them invalid, returns nine predictions."""
    predictions = classifier.predict(_mixed_batch())  # type: ignore[arg-type]

    assert len(predictions) == len(_mixed_batch())
    assert all(isinstance(prediction, Prediction) for prediction in predictions)


def test_predict_flags_invalid_items(classifier: TextClassifier) -> None:
    """Empty, whitespace-only and non-string items get an error and no label."""
    predictions = classifier.predict(_mixed_batch())  # type: ignore[arg-type]

    for position in INVALID_POSITIONS:
        prediction = predictions[position]
        assert prediction.error, f"item {position} has no error"
        assert prediction.label is None, f"item {position} has label {prediction.label!r}"
        assert prediction.score is None, f"item {position} has score {prediction.score!r}"
        assert not prediction.is_ok, f"item {position} reads as scored"


def test_predict_names_type_of_non_string_item(classifier: TextClassifier) -> None:
    """The error for a non-string item names the type that was sent."""
    predictions = classifier.predict(_mixed_batch())  # type: ignore[arg-type]

    assert predictions[2].error is not None
    assert "NoneType" in predictions[2].error


def test_predict_scores_valid_items_in_input_order(classifier: TextClassifier) -> None:
    """Each valid item in a mixed batch gets the result it gets when sent alone.

    Given a batch that mixes invalid items, a huge text, Chinese, mixed Chinese-English,
    emoji and plain English texts.
    When the batch is classified.
    Then each valid position carries its own text's label and distribution.
    """
    batch = _mixed_batch()

    predictions = classifier.predict(batch)  # type: ignore[arg-type]

    for position in VALID_POSITIONS:
        alone = classifier.predict([batch[position]])[0]  # type: ignore[list-item]
        prediction = predictions[position]
        assert prediction.error is None, f"item {position}: {prediction.error}"
        assert prediction.label == alone.label, f"item {position}"
        for label, probability in alone.distribution.items():
            assert math.isclose(
                prediction.distribution[label], probability, abs_tol=MAX_PROBABILITY_DIFFERENCE
            ), f"item {position}, label {label}"


def test_predict_flags_only_huge_text_as_truncated(classifier: TextClassifier) -> None:
    """Only the 50,000-character text exceeds max_length, so only it is flagged truncated."""
    predictions = classifier.predict(_mixed_batch())  # type: ignore[arg-type]

    truncated = [
        position for position, prediction in enumerate(predictions) if prediction.truncated
    ]

    assert truncated == [3]


def test_predict_distribution_lists_every_label(classifier: TextClassifier) -> None:
    """Each scored distribution covers every label, sums to 1 and peaks at the label."""
    predictions = classifier.predict(_mixed_batch())  # type: ignore[arg-type]

    for position in VALID_POSITIONS:
        prediction = predictions[position]
        assert prediction.score is not None
        assert sorted(prediction.distribution) == sorted(classifier.labels), f"item {position}"
        assert math.isclose(sum(prediction.distribution.values()), 1.0, abs_tol=1e-5), (
            f"item {position}"
        )
        assert prediction.label == max(prediction.distribution, key=prediction.distribution.get)
        assert prediction.score == prediction.distribution[prediction.label], f"item {position}"


def test_predict_batch_of_invalid_items(classifier: TextClassifier) -> None:
    """A batch with no valid item returns an error for each item."""
    predictions = classifier.predict(["", "   ", None])  # type: ignore[list-item]

    assert [prediction.label for prediction in predictions] == [None, None, None]
    assert all(prediction.error for prediction in predictions)


def test_predict_empty_batch(classifier: TextClassifier) -> None:
    """An empty batch returns an empty list."""
    assert classifier.predict([]) == []


# predict_proba: the length-bucketed path equals scoring one text at a time


def test_bucketed_probabilities_equal_one_at_a_time(
    classifier: TextClassifier, varied_texts: list[str]
) -> None:
    """Length-bucketed batches of 8 give the probabilities of scoring each text alone.

    Given 50 texts of 1 to about 100 words and a batch size that forces several buckets.
    When they are scored together and then one at a time.
    Then the probabilities differ by less than 1e-5, and the truncation flags agree.
    """
    classifier.batch_size = 8

    together, truncated_together = classifier.predict_proba(varied_texts)
    alone = [classifier.predict_proba([text]) for text in varied_texts]

    one_at_a_time = np.vstack([probabilities for probabilities, _ in alone])
    difference = float(np.abs(together - one_at_a_time).max())
    assert together.shape == (50, len(classifier.labels))
    assert difference < MAX_PROBABILITY_DIFFERENCE, f"max difference {difference}"
    assert truncated_together == [flags[0] for _, flags in alone]


def test_varied_texts_include_truncated_ones(
    classifier: TextClassifier, varied_texts: list[str]
) -> None:
    """The equivalence texts include some under and some over max_length."""
    _, truncated = classifier.predict_proba(varied_texts)

    assert any(truncated)
    assert not all(truncated)


# iter_length_buckets


@pytest.mark.parametrize("batch_size", [1, 3, 8, 50, 100])
def test_buckets_yield_every_index_once(batch_size: int) -> None:
    """Every index appears in exactly one batch, and no batch exceeds batch_size."""
    lengths = [(index * 37) % 23 for index in range(50)]

    batches = list(iter_length_buckets(lengths, batch_size))

    flat = [index for batch in batches for index in batch]
    assert sorted(flat) == list(range(50))
    assert all(1 <= len(batch) <= batch_size for batch in batches)


def test_buckets_start_with_longest_items() -> None:
    """Items are taken longest first, so the first batch is the most expensive one."""
    lengths = [3, 9, 1, 7, 5]

    batches = list(iter_length_buckets(lengths, 2))

    assert batches == [[1, 3], [4, 0], [2]]


def test_buckets_yield_nothing_for_no_items() -> None:
    """No lengths means no batches."""
    assert list(iter_length_buckets([], 4)) == []


@pytest.mark.parametrize("batch_size", [0, -1])
def test_reject_bucket_size_below_one(batch_size: int) -> None:
    """A batch size below 1 raises ValueError naming the value."""
    with pytest.raises(ValueError, match="batch_size"):
        list(iter_length_buckets([1, 2, 3], batch_size))


# Out-of-scope threshold


def test_predict_marks_low_scores_out_of_scope(classifier: TextClassifier) -> None:
    """With threshold 0.999, exactly the predictions scoring below it are out of scope."""
    classifier.oos_threshold = 0.999

    predictions = classifier.predict([*NORMAL_TEXTS, CHINESE_TEXT, EMOJI_TEXT])

    for prediction in predictions:
        assert prediction.score is not None
        assert prediction.out_of_scope == (prediction.score < 0.999), prediction
    assert any(prediction.out_of_scope for prediction in predictions)


def test_predict_marks_nothing_without_threshold(classifier: TextClassifier) -> None:
    """Without a stored threshold no prediction is out of scope."""
    classifier.oos_threshold = None

    predictions = classifier.predict([*NORMAL_TEXTS, CHINESE_TEXT, EMOJI_TEXT])

    assert not any(prediction.out_of_scope for prediction in predictions)


def test_threshold_change_stays_in_copy(
    classifier: TextClassifier, _head_classifier: TextClassifier
) -> None:
    """Changing a copy's threshold leaves the session's classifier as it was."""
    stored = _head_classifier.oos_threshold

    classifier.oos_threshold = 0.999

    assert _head_classifier.oos_threshold == stored


# Loading from the registry


def test_load_classifier_once_per_process(registered_head: ModelVersion) -> None:
    """Two loads of one registered version in one process return the same object."""
    first = load_text_classifier(registered_head.reference)
    second = load_text_classifier(registered_head.reference)

    assert first is second


def test_reload_classifier_after_cache_clear(registered_head: ModelVersion) -> None:
    """After `clear_classifier_cache` the next load builds a new object."""
    first = load_text_classifier(registered_head.reference)

    clear_classifier_cache()

    assert load_text_classifier(registered_head.reference) is not first


def test_load_follows_promotion(
    registered_head: ModelVersion, trained_models: dict[str, TrainedClassifier]
) -> None:
    """A name serves its new production version once promoted, without a cache clear."""
    promote_version(registered_head.reference)
    first = load_text_classifier(MODEL_NAME)
    trained = trained_models["head"]
    second_version = register_model(
        name=MODEL_NAME,
        task="sequence-classification",
        model_dir=trained.model_dir,
        base_model=trained.config.base_model,
        method="head",
        label_map=trained.label2id,
    )

    assert load_text_classifier(MODEL_NAME) is first

    promote_version(second_version.reference)
    second = load_text_classifier(MODEL_NAME)

    assert second is not first
    assert second.reference == second_version.reference


def test_load_registered_version_with_its_labels(
    registered_head: ModelVersion, trained_models: dict[str, TrainedClassifier]
) -> None:
    """A registered version loads with the training label order and its reference."""
    classifier = TextClassifier.from_registry(registered_head.reference)

    assert classifier.labels == list(trained_models["head"].label2id)
    assert classifier.reference == registered_head.reference


def test_reject_registered_version_changed_weights(registered_head: ModelVersion) -> None:
    """Changing one byte of the registered weights makes loading raise IntegrityError."""
    weights = Path(registered_head.path) / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))

    with pytest.raises(IntegrityError, match=r"model\.safetensors"):
        TextClassifier.from_registry(registered_head.reference)
