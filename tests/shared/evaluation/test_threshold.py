"""Tests for choosing the out-of-scope threshold on the dev split."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from shared.evaluation import (
    choose_oos_threshold,
    compute_accepted_mask,
    evaluate_predictions,
)


def test_false_rejection_rule_rejects_budgeted_share(make_rows):
    """With 100 correct examples and a 5% budget, exactly the 5 least confident are rejected."""
    confidences = np.linspace(0.51, 1.0, 100)
    probabilities = make_rows([0] * 100, confidences, 2)

    choice = choose_oos_threshold(probabilities_dev=probabilities, y_dev=[0] * 100)

    assert choice.rule == "false-rejection"
    assert choice.threshold == pytest.approx(confidences[5])
    assert choice.dev_false_rejection == pytest.approx(0.05)
    assert choice.dev_coverage == pytest.approx(0.95)
    assert choice.dev_accuracy_accepted == 1.0
    assert choice.max_false_rejection == 0.05
    assert choice.dev_macro_f1 is None
    assert choice.n_dev == 100


def test_false_rejection_rule_is_largest_such_threshold(make_rows):
    """Any threshold above the chosen one would reject more than the budget allows."""
    confidences = np.linspace(0.51, 1.0, 100)
    probabilities = make_rows([0] * 100, confidences, 2)

    choice = choose_oos_threshold(
        probabilities_dev=probabilities, y_dev=[0] * 100, max_false_rejection=0.29
    )

    assert choice.dev_false_rejection <= 0.29
    next_value = np.nextafter(choice.threshold, 1.0)
    assert (confidences < next_value).mean() > 0.29


def test_false_rejection_rule_ignores_wrong_predictions(make_rows):
    # 20 correct at 0.6..0.99 and 20 wrong at low confidence: only the correct ones count.
    correct_confidences = np.linspace(0.6, 0.99, 20)
    wrong_confidences = np.full(20, 0.55)
    probabilities = make_rows([0] * 40, np.r_[correct_confidences, wrong_confidences], 2)
    y_dev = [0] * 20 + [1] * 20

    choice = choose_oos_threshold(
        probabilities_dev=probabilities, y_dev=y_dev, max_false_rejection=0.1
    )

    assert choice.threshold == pytest.approx(correct_confidences[2])
    assert choice.dev_false_rejection == pytest.approx(0.1)
    assert choice.dev_coverage == pytest.approx(18 / 40)
    assert choice.dev_accuracy_accepted == 1.0


def test_false_rejection_rule_with_zero_budget(make_rows):
    confidences = [0.7, 0.8, 0.9]
    probabilities = make_rows([0, 1, 2], confidences, 3)

    choice = choose_oos_threshold(
        probabilities_dev=probabilities, y_dev=[0, 1, 2], max_false_rejection=0.0
    )

    assert choice.threshold == pytest.approx(0.7)
    assert choice.dev_false_rejection == 0.0
    assert choice.dev_coverage == 1.0


def test_false_rejection_rule_with_tied_confidences(make_rows):
    probabilities = make_rows([0] * 50, [0.8] * 50, 2)

    choice = choose_oos_threshold(probabilities_dev=probabilities, y_dev=[0] * 50)

    assert choice.threshold == pytest.approx(0.8)
    assert choice.dev_coverage == 1.0


def test_oos_index_without_oos_examples(make_rows):
    probabilities = make_rows([0, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], 3)

    choice = choose_oos_threshold(probabilities_dev=probabilities, y_dev=[0, 1, 0, 1], oos_index=2)

    assert choice.rule == "false-rejection"


def test_oos_f1_rule_separates_oos_examples(make_rows):
    """In-scope inputs are confident and right, out-of-scope ones unsure, so F1 reaches 1."""
    in_scope = [0.9, 0.85, 0.8, 0.95]
    out_of_scope = [0.5, 0.6, 0.45]
    probabilities = make_rows([0, 1, 0, 1, 0, 1, 1], in_scope + out_of_scope, 3)
    y_dev = [0, 1, 0, 1, 2, 2, 2]

    choice = choose_oos_threshold(probabilities_dev=probabilities, y_dev=y_dev, oos_index=2)

    assert choice.rule == "oos-f1"
    assert choice.threshold == pytest.approx(0.8)
    assert choice.dev_macro_f1 == pytest.approx(1.0)
    assert choice.dev_coverage == pytest.approx(4 / 7)
    assert choice.dev_accuracy_accepted == 1.0
    assert choice.dev_false_rejection == 0.0
    assert choice.max_false_rejection is None


def test_oos_f1_rule_without_useful_rejection(make_rows):
    # The classifier already predicts the out-of-scope class for every out-of-scope input.
    probabilities = make_rows([0, 1, 2, 2], [0.6, 0.7, 0.8, 0.9], 3)

    choice = choose_oos_threshold(probabilities_dev=probabilities, y_dev=[0, 1, 2, 2], oos_index=2)

    assert choice.rule == "oos-f1"
    assert choice.threshold == 0.0
    assert choice.dev_macro_f1 == pytest.approx(1.0)
    assert choice.dev_coverage == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oos_f1_rule_matches_brute_force(random_probabilities, seed):
    """The one-pass search finds the same best macro-F1 as scoring every threshold with sklearn."""
    probabilities, y_dev = random_probabilities(300, 6, seed)
    oos_index = 5
    confidences = probabilities.max(axis=1)
    argmax = probabilities.argmax(axis=1)

    def score(threshold: float) -> float:
        predicted = np.where(confidences >= threshold, argmax, oos_index)
        return f1_score(y_dev, predicted, average="macro", zero_division=0)

    candidates = [0.0, *np.unique(confidences)]
    best = max(score(value) for value in candidates)
    lowest_best = min(value for value in candidates if score(value) >= best - 1e-12)

    choice = choose_oos_threshold(probabilities_dev=probabilities, y_dev=y_dev, oos_index=oos_index)

    assert choice.dev_macro_f1 == pytest.approx(best, abs=1e-12)
    assert score(choice.threshold) == pytest.approx(best, abs=1e-12)
    assert choice.threshold == pytest.approx(lowest_best)


def test_threshold_coverage_matches_evaluation(random_probabilities):
    probabilities, y_dev = random_probabilities(200, 4, 7)
    labels = ["a", "b", "c", "oos"]

    choice = choose_oos_threshold(probabilities_dev=probabilities, y_dev=y_dev, oos_index=3)
    report = evaluate_predictions(
        y_true=y_dev,
        probabilities=probabilities,
        labels=labels,
        threshold=choice.threshold,
        oos_label="oos",
    )

    assert report.out_of_scope is not None
    assert report.out_of_scope.coverage == pytest.approx(choice.dev_coverage)
    assert report.out_of_scope.accepted_accuracy == pytest.approx(choice.dev_accuracy_accepted)


def test_compute_accepted_mask():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8]])

    assert compute_accepted_mask(probabilities, threshold=None).tolist() == [True, True, True]
    assert compute_accepted_mask(probabilities, threshold=0.5).tolist() == [True, False, True]
    mask = compute_accepted_mask(probabilities, threshold=0.5, oos_index=2)
    assert mask.tolist() == [True, False, False]


VALID_ROWS = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        pytest.param({"oos_index": 3}, "oos_index", id="oos-index-too-large"),
        pytest.param({"oos_index": -1}, "oos_index", id="oos-index-negative"),
        pytest.param({"oos_index": True}, "oos_index", id="oos-index-bool"),
        pytest.param({"oos_index": 1.0}, "oos_index", id="oos-index-float"),
        pytest.param({"max_false_rejection": 1.0}, "max_false_rejection", id="budget-one"),
        pytest.param({"max_false_rejection": -0.1}, "max_false_rejection", id="budget-negative"),
        pytest.param({"max_false_rejection": float("nan")}, "max_false_rejection", id="budget-nan"),
        pytest.param({"y_dev": [0]}, "y_dev", id="y-length"),
        pytest.param({"y_dev": [0, 5]}, "y_dev", id="y-range"),
        pytest.param({"probabilities_dev": np.empty((0, 3))}, "probabilities_dev", id="empty"),
        pytest.param(
            {"probabilities_dev": np.array([[np.nan, 0.5, 0.5], [0.1, 0.8, 0.1]])},
            "probabilities_dev",
            id="nan",
        ),
        pytest.param(
            {"probabilities_dev": np.array([[0.5, 0.5, 0.5], [0.1, 0.8, 0.1]])},
            "probabilities_dev",
            id="row-sum",
        ),
    ],
)
def test_choose_threshold_rejects_invalid_input(arguments, argument):
    call = {"probabilities_dev": VALID_ROWS, "y_dev": [0, 1]} | arguments

    with pytest.raises(ValueError, match=f"`{argument}`"):
        choose_oos_threshold(**call)


def test_false_rejection_without_correct_prediction(make_rows):
    probabilities = make_rows([1, 0], [0.9, 0.9], 2)

    with pytest.raises(ValueError, match="No dev example is classified correctly"):
        choose_oos_threshold(probabilities_dev=probabilities, y_dev=[0, 1])
