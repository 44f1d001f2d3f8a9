"""Tests for classification metrics, calibration and their input checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydantic
import pytest
from sklearn.metrics import f1_score

import shared.evaluation
from shared.evaluation import (
    ClassificationReport,
    evaluate_predictions,
    expected_calibration_error,
    reliability_bins,
)

LABELS = ["card_lost", "refund", "greeting"]


@pytest.fixture
def small_report(make_rows) -> ClassificationReport:
    """Six examples, two per class, predicted as [0, 1, 1, 1, 2, 0], all with confidence 0.8."""
    probabilities = make_rows([0, 1, 1, 1, 2, 0], [0.8] * 6, 3)
    return evaluate_predictions(
        y_true=[0, 0, 1, 1, 2, 2], probabilities=probabilities, labels=LABELS
    )


def test_package_pins_public_api():
    assert sorted(shared.evaluation.__all__) == [
        "ClassMetrics",
        "ClassificationReport",
        "DEFAULT_N_BINS",
        "OutOfScopeSummary",
        "ReliabilityBin",
        "ReportDocument",
        "ReportFiles",
        "ThresholdChoice",
        "ThresholdRule",
        "choose_oos_threshold",
        "compute_accepted_mask",
        "evaluate_predictions",
        "expected_calibration_error",
        "find_cjk_font",
        "load_report",
        "plot_confusion_matrix",
        "plot_training_curves",
        "reliability_bins",
        "render_markdown",
        "write_report",
    ]


def test_package_import_skips_torch_and_pyplot():
    """The package works on numpy arrays, so importing it must not load torch or pyplot."""
    check = (
        "import sys, shared.evaluation; "
        "print(sorted({'torch', 'transformers', 'matplotlib.pyplot'} & set(sys.modules)))"
    )
    repository_root = Path(__file__).resolve().parents[3]

    result = subprocess.run(
        [sys.executable, "-c", check], cwd=repository_root, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_evaluate_matches_hand_computed_values(small_report):
    # Class 0: tp 1, fp 1, fn 1. Class 1: tp 2, fp 1, fn 0. Class 2: tp 1, fp 0, fn 1.
    assert small_report.n_examples == 6
    assert small_report.labels == LABELS
    assert small_report.accuracy == pytest.approx(4 / 6)
    assert small_report.per_class["card_lost"].precision == pytest.approx(0.5)
    assert small_report.per_class["card_lost"].recall == pytest.approx(0.5)
    assert small_report.per_class["card_lost"].f1 == pytest.approx(0.5)
    assert small_report.per_class["refund"].precision == pytest.approx(2 / 3)
    assert small_report.per_class["refund"].recall == pytest.approx(1.0)
    assert small_report.per_class["refund"].f1 == pytest.approx(0.8)
    assert small_report.per_class["greeting"].precision == pytest.approx(1.0)
    assert small_report.per_class["greeting"].recall == pytest.approx(0.5)
    assert small_report.per_class["greeting"].f1 == pytest.approx(2 / 3)
    assert small_report.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert small_report.weighted_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert small_report.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert all(metrics.support == 2 for metrics in small_report.per_class.values())


def test_evaluate_computes_ece_on_max_probability(small_report):
    # Every confidence is 0.8 and accuracy is 4/6, so all examples share one bin.
    assert small_report.ece == pytest.approx(abs(0.8 - 4 / 6))
    assert small_report.ece_bins == 15


def test_evaluate_perfect_predictions(make_rows):
    probabilities = make_rows([0, 1, 2, 2], [1.0] * 4, 3)

    report = evaluate_predictions(y_true=[0, 1, 2, 2], probabilities=probabilities, labels=LABELS)

    assert report.accuracy == 1.0
    assert report.macro_f1 == 1.0
    assert report.weighted_f1 == 1.0
    assert report.ece == pytest.approx(0.0)
    assert report.confusion == [[1, 0, 0], [0, 1, 0], [0, 0, 2]]


def test_evaluate_all_wrong_predictions(make_rows):
    probabilities = make_rows([1, 2, 0], [0.9] * 3, 3)

    report = evaluate_predictions(y_true=[0, 1, 2], probabilities=probabilities, labels=LABELS)

    assert report.accuracy == 0.0
    assert report.macro_f1 == 0.0
    assert report.weighted_f1 == 0.0
    assert report.ece == pytest.approx(0.9)
    assert all(metrics.f1 == 0.0 for metrics in report.per_class.values())


def test_evaluate_absent_class_zero_row(make_rows):
    """A class neither true nor predicted gets zeros but does not lower macro-F1."""
    y_true = [0, 0, 1, 1]
    predicted = [0, 1, 1, 1]
    probabilities = make_rows(predicted, [0.7] * 4, 3)

    report = evaluate_predictions(y_true=y_true, probabilities=probabilities, labels=LABELS)

    absent = report.per_class["greeting"]
    assert (absent.precision, absent.recall, absent.f1, absent.support) == (0.0, 0.0, 0.0, 0)
    assert len(report.confusion) == 3
    assert report.confusion[2] == [0, 0, 0]
    assert [row[2] for row in report.confusion] == [0, 0, 0]
    assert report.macro_f1 == pytest.approx(f1_score(y_true, predicted, average="macro"))


def test_evaluate_predicted_absent_class_in_macro(make_rows):
    """A class predicted but never true has precision 0 and lowers macro-F1."""
    y_true = [0, 0, 1, 1]
    predicted = [0, 2, 1, 1]
    probabilities = make_rows(predicted, [0.7] * 4, 3)

    report = evaluate_predictions(y_true=y_true, probabilities=probabilities, labels=LABELS)

    assert report.per_class["greeting"].precision == 0.0
    assert report.per_class["greeting"].support == 0
    assert report.macro_f1 == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)


def test_evaluate_accepts_integral_float_labels(make_rows):
    probabilities = make_rows([0, 1], [0.9, 0.9], 3)

    report = evaluate_predictions(y_true=[0.0, 1.0], probabilities=probabilities, labels=LABELS)

    assert report.accuracy == 1.0


def test_evaluate_without_threshold_has_no_oos_block(small_report):
    assert small_report.out_of_scope is None


def test_evaluate_threshold_without_oos_label(make_rows):
    # Confidences 0.9, 0.6, 0.9, 0.4: the 0.5 threshold rejects the last, which is wrong.
    probabilities = make_rows([0, 1, 1, 0], [0.9, 0.6, 0.9, 0.4], 3)

    report = evaluate_predictions(
        y_true=[0, 0, 1, 1], probabilities=probabilities, labels=LABELS, threshold=0.5
    )

    summary = report.out_of_scope
    assert summary is not None
    assert summary.threshold == 0.5
    assert summary.oos_label is None
    assert summary.coverage == pytest.approx(0.75)
    assert summary.n_accepted == 3
    assert summary.accepted_accuracy == pytest.approx(2 / 3)
    assert summary.in_scope_accuracy == pytest.approx(2 / 4)
    assert summary.oos_f1 is None
    assert summary.oos_support is None


def test_evaluate_threshold_with_oos_label(make_rows):
    """Rejected inputs are those below the threshold plus those whose argmax is out of scope."""
    labels = ["balance", "transfer", "oos"]
    # index:      0    1    2    3    4    5
    y_true = [0, 0, 1, 2, 2, 2]
    predicted = [0, 0, 1, 0, 2, 1]
    confidences = [0.9, 0.4, 0.8, 0.45, 0.9, 0.8]
    probabilities = make_rows(predicted, confidences, 3)

    report = evaluate_predictions(
        y_true=y_true, probabilities=probabilities, labels=labels, threshold=0.5, oos_label="oos"
    )

    # Accepted: 0, 2, 5. Rejected: 1 (low confidence), 3 (low confidence), 4 (argmax oos).
    summary = report.out_of_scope
    assert summary is not None
    assert summary.oos_label == "oos"
    assert summary.n_accepted == 3
    assert summary.coverage == pytest.approx(0.5)
    assert summary.accepted_accuracy == pytest.approx(2 / 3)
    assert summary.in_scope_accuracy == pytest.approx(2 / 3)
    # Rejected are 1, 3 and 4, of which 3 and 4 are truly out of scope. True oos are 3, 4 and 5.
    assert summary.oos_precision == pytest.approx(2 / 3)
    assert summary.oos_recall == pytest.approx(2 / 3)
    assert summary.oos_f1 == pytest.approx(2 / 3)
    assert summary.oos_support == 3


def test_evaluate_oos_label_without_threshold(make_rows):
    labels = ["balance", "transfer", "oos"]
    probabilities = make_rows([0, 2, 2], [0.9, 0.9, 0.9], 3)

    report = evaluate_predictions(
        y_true=[0, 1, 2], probabilities=probabilities, labels=labels, oos_label="oos"
    )

    summary = report.out_of_scope
    assert summary is not None
    assert summary.threshold is None
    assert summary.n_accepted == 1
    assert summary.oos_precision == pytest.approx(0.5)
    assert summary.oos_recall == pytest.approx(1.0)


def test_evaluate_oos_label_with_no_oos_examples(make_rows):
    labels = ["balance", "transfer", "oos"]
    probabilities = make_rows([0, 1], [0.9, 0.9], 3)

    report = evaluate_predictions(
        y_true=[0, 1], probabilities=probabilities, labels=labels, threshold=0.5, oos_label="oos"
    )

    summary = report.out_of_scope
    assert summary is not None
    assert summary.oos_support == 0
    assert summary.oos_recall == 0.0
    assert summary.oos_precision == 0.0


def test_report_round_trips_through_json(make_rows):
    labels = ["balance", "transfer", "oos"]
    probabilities = make_rows([0, 0, 1, 2], [0.9, 0.4, 0.8, 0.7], 3)
    report = evaluate_predictions(
        y_true=[0, 1, 1, 2],
        probabilities=probabilities,
        labels=labels,
        threshold=0.5,
        oos_label="oos",
    )

    restored = ClassificationReport.model_validate_json(report.model_dump_json())

    assert restored == report
    assert list(restored.per_class) == labels


def test_report_rejects_inconsistent_confusion(small_report):
    data = small_report.model_dump()
    data["confusion"] = [[1, 0], [0, 1]]

    with pytest.raises(pydantic.ValidationError, match="confusion"):
        ClassificationReport.model_validate(data)


def test_report_rejects_per_class_keys_out_of_order(small_report):
    data = small_report.model_dump()
    data["per_class"] = dict(reversed(list(data["per_class"].items())))

    with pytest.raises(pydantic.ValidationError, match="per_class"):
        ClassificationReport.model_validate(data)


VALID_ROWS = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]]


@pytest.mark.parametrize(
    ("y_true", "probabilities", "labels", "argument"),
    [
        pytest.param([], np.empty((0, 3)), LABELS, "probabilities", id="empty"),
        pytest.param([0], [0.7, 0.2, 0.1], LABELS, "probabilities", id="one-dimensional"),
        pytest.param([0], [[0.5, 0.2], [0.3]], LABELS, "probabilities", id="ragged"),
        pytest.param([0], [[1.0]], ["only"], "probabilities", id="one-column"),
        pytest.param(
            [0, 1], [[0.7, 0.2, 0.2], [0.1, 0.8, 0.1]], LABELS, "probabilities", id="row-sum"
        ),
        pytest.param(
            [0, 1], [[np.nan, 0.5, 0.5], [0.1, 0.8, 0.1]], LABELS, "probabilities", id="nan"
        ),
        pytest.param(
            [0, 1], [[1.2, -0.2, 0.0], [0.1, 0.8, 0.1]], LABELS, "probabilities", id="range"
        ),
        pytest.param([0, 1], VALID_ROWS, LABELS[:2], "labels", id="label-count"),
        pytest.param([0, 1], VALID_ROWS, ["a", "a", "b"], "labels", id="duplicate-labels"),
        pytest.param([0], VALID_ROWS, LABELS, "y_true", id="length"),
        pytest.param([0, 3], VALID_ROWS, LABELS, "y_true", id="index-too-large"),
        pytest.param([0, -1], VALID_ROWS, LABELS, "y_true", id="negative-index"),
        pytest.param([0, 1.5], VALID_ROWS, LABELS, "y_true", id="fractional-index"),
        pytest.param([0, np.nan], VALID_ROWS, LABELS, "y_true", id="nan-index"),
        pytest.param([[0, 1]], VALID_ROWS, LABELS, "y_true", id="two-dimensional-y"),
    ],
)
def test_evaluate_rejects_invalid_input(y_true, probabilities, labels, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        evaluate_predictions(y_true=y_true, probabilities=probabilities, labels=labels)


def test_evaluate_rejects_unknown_oos_label():
    with pytest.raises(ValueError, match="`oos_label` 'oos'"):
        evaluate_predictions(
            y_true=[0, 1], probabilities=VALID_ROWS, labels=LABELS, oos_label="oos"
        )


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_evaluate_rejects_threshold_out_of_range(threshold):
    with pytest.raises(ValueError, match="`threshold`"):
        evaluate_predictions(
            y_true=[0, 1], probabilities=VALID_ROWS, labels=LABELS, threshold=threshold
        )


def test_evaluate_rejects_string_class_indices():
    with pytest.raises(TypeError, match="`y_true`"):
        evaluate_predictions(y_true=["a", "b"], probabilities=VALID_ROWS, labels=LABELS)


def test_evaluate_rejects_non_string_labels():
    with pytest.raises(TypeError, match="`labels`"):
        evaluate_predictions(y_true=[0, 1], probabilities=VALID_ROWS, labels=[0, 1, 2])


def test_evaluate_accepts_float32_rows_within_tolerance():
    # float32 softmax rows sum to 1 only up to rounding.
    probabilities = np.array([[0.3333, 0.3333, 0.3333], [0.1, 0.8, 0.1]], dtype=np.float32)

    report = evaluate_predictions(y_true=[0, 1], probabilities=probabilities, labels=LABELS)

    assert report.n_examples == 2


def test_ece_near_zero_on_calibrated_data():
    """When accuracy equals confidence in expectation, ECE shrinks towards 0."""
    rng = np.random.default_rng(0)
    confidences = rng.uniform(0.2, 1.0, 200_000)
    correct = rng.random(200_000) < confidences

    ece = expected_calibration_error(confidences, correct)

    assert ece < 0.01


def test_ece_of_over_confident_data():
    # 100 predictions at 0.9 with half right (gap 0.4) and 100 at 0.3 with 30 right (gap 0).
    confidences = np.r_[np.full(100, 0.9), np.full(100, 0.3)]
    correct = np.r_[np.arange(100) < 50, np.arange(100) < 30]

    ece = expected_calibration_error(confidences, correct)

    assert ece == pytest.approx(0.5 * 0.4)


def test_ece_of_single_confidence_equals_gap():
    confidences = np.full(20, 0.95)
    correct = np.arange(20) < 14

    assert expected_calibration_error(confidences, correct) == pytest.approx(0.95 - 0.7)


def test_reliability_bins_are_right_closed():
    """An upper edge belongs to its own bin, and confidence 0 to the first bin."""
    bins = reliability_bins([0.0, 0.2, 0.2000001, 1.0], [True, False, True, True], n_bins=5)

    assert [item.count for item in bins] == [2, 1, 0, 0, 1]
    assert bins[0].lower == 0.0
    assert bins[0].upper == pytest.approx(0.2)
    assert bins[0].accuracy == pytest.approx(0.5)
    assert bins[0].mean_confidence == pytest.approx(0.1)
    assert bins[2].accuracy is None
    assert bins[2].mean_confidence is None
    assert bins[4].upper == 1.0


def test_reliability_bins_default_count():
    assert len(reliability_bins([0.5], [True])) == 15


@pytest.mark.parametrize(
    ("confidences", "correct", "n_bins", "argument"),
    [
        pytest.param([], [], 15, "confidences", id="empty"),
        pytest.param([0.5, 0.6], [True], 15, "correct", id="length"),
        pytest.param([0.5, np.nan], [True, False], 15, "confidences", id="nan"),
        pytest.param([0.5, 1.2], [True, False], 15, "confidences", id="above-one"),
        pytest.param([0.5, 0.6], [1, 2], 15, "correct", id="non-boolean"),
        pytest.param([0.5], [True], 0, "n_bins", id="zero-bins"),
        pytest.param([0.5], [True], 2.5, "n_bins", id="fractional-bins"),
    ],
)
def test_ece_rejects_invalid_input(confidences, correct, n_bins, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        expected_calibration_error(confidences, correct, n_bins)
