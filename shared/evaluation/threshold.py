"""Out-of-scope rejection: choose a confidence threshold on the dev split.

An input is rejected as out of scope when its maximum class probability is
below the threshold, or when the classifier's own out-of-scope class wins.
The threshold is chosen on the dev split only, so the test split stays an
unbiased estimate:

* ``"oos-f1"``: when the dev data contains out-of-scope examples (CLINC150
  style), the threshold maximises macro-F1 over the in-scope classes plus
  the out-of-scope class.
* ``"false-rejection"``: when it does not (Banking77 style), the threshold is
  the largest one that rejects at most `max_false_rejection` of the
  correctly classified dev examples.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shared.evaluation._checks import check_class_indices, check_fraction, check_probabilities

__all__ = ["ThresholdChoice", "ThresholdRule", "choose_oos_threshold", "compute_accepted_mask"]

logger = logging.getLogger(__name__)

ThresholdRule = Literal["oos-f1", "false-rejection"]


class ThresholdChoice(BaseModel):
    """An out-of-scope threshold chosen on the dev split, with its dev statistics."""

    model_config = ConfigDict(frozen=True)

    rule: ThresholdRule = Field(
        description="`oos-f1` when the dev data has out-of-scope examples, else `false-rejection`."
    )
    threshold: float = Field(
        ge=0.0,
        le=1.0,
        description="Inputs whose maximum probability is below this value are rejected.",
    )
    n_dev: int = Field(ge=1, description="Number of dev examples the threshold was chosen on.")
    dev_coverage: float = Field(description="Share of dev inputs accepted as in scope.")
    dev_accuracy_accepted: float | None = Field(
        description="Accuracy on the accepted dev inputs, or None when none is accepted."
    )
    dev_false_rejection: float = Field(
        description="Share of correctly classified in-scope dev inputs that the threshold rejects."
    )
    dev_macro_f1: float | None = Field(
        default=None,
        description="Macro-F1 over in-scope classes plus out-of-scope at the threshold "
        "(`oos-f1` rule only).",
    )
    max_false_rejection: float | None = Field(
        default=None,
        description="Share of correct dev inputs the threshold may reject "
        "(`false-rejection` rule only).",
    )


def compute_accepted_mask(
    probabilities: np.ndarray, *, threshold: float | None, oos_index: int | None = None
) -> np.ndarray:
    """Mark the inputs that a threshold accepts as in scope.

    Args:
        probabilities: Class probabilities, shape (n, C).
        threshold: Lowest maximum probability that is accepted. None accepts every
            confidence.
        oos_index: Column of the classifier's out-of-scope class, whose wins
            are always rejected. None when the classifier has no such class.

    Returns:
        A boolean array of shape (n,), true where the input is accepted.
    """
    accepted = np.ones(probabilities.shape[0], dtype=bool)
    if threshold is not None:
        accepted &= probabilities.max(axis=1) >= threshold
    if oos_index is not None:
        accepted &= probabilities.argmax(axis=1) != oos_index
    return accepted


def choose_oos_threshold(
    *,
    probabilities_dev: np.ndarray,
    y_dev: Sequence[int] | np.ndarray,
    oos_index: int | None = None,
    max_false_rejection: float = 0.05,
) -> ThresholdChoice:
    """Choose the out-of-scope threshold on the dev split.

    Args:
        probabilities_dev: Dev-split class probabilities, shape (n, C).
        y_dev: True class index of each dev example.
        oos_index: Column of the out-of-scope class, or None when the label set
            has none. The `oos-f1` rule applies only when some `y_dev` equals it.
        max_false_rejection: Largest share of correctly classified dev
            examples that the `false-rejection` rule may reject, in [0, 1).

    Returns:
        The threshold, the rule that chose it and its dev statistics. With
        `oos-f1`, ties go to the lowest threshold, and the threshold is the
        lowest accepted dev confidence, or 0.0 when rejecting nothing scores best.

    Raises:
        ValueError: If an argument has the wrong shape or range, or, under the
            `false-rejection` rule, no dev example is classified correctly.
    """
    probabilities = check_probabilities(probabilities_dev, name="probabilities_dev")
    n_examples, n_classes = probabilities.shape
    y_true = check_class_indices(y_dev, name="y_dev", n_examples=n_examples, n_classes=n_classes)
    budget = check_fraction(max_false_rejection, name="max_false_rejection", allow_one=False)
    _check_oos_index(oos_index, n_classes=n_classes)

    if oos_index is not None and (y_true == oos_index).any():
        threshold, macro_f1 = _search_oos_f1_threshold(probabilities, y_true, oos_index)
        choice = _describe_choice(
            probabilities, y_true, oos_index=oos_index, threshold=threshold, rule="oos-f1"
        )
        choice = choice.model_copy(update={"dev_macro_f1": macro_f1})
    else:
        threshold = _pick_false_rejection_threshold(probabilities, y_true, budget)
        choice = _describe_choice(
            probabilities, y_true, oos_index=oos_index, threshold=threshold, rule="false-rejection"
        )
        choice = choice.model_copy(update={"max_false_rejection": budget})
    logger.debug(
        "oos threshold chosen: rule=%s threshold=%.4f dev_coverage=%.4f",
        choice.rule,
        choice.threshold,
        choice.dev_coverage,
    )
    return choice


def _check_oos_index(oos_index: int | None, *, n_classes: int) -> None:
    if oos_index is None:
        return
    is_integer = isinstance(oos_index, int | np.integer) and not isinstance(oos_index, bool)
    if not is_integer or not 0 <= oos_index < n_classes:
        raise ValueError(
            f"`oos_index` must be None or a column index in [0, {n_classes - 1}], "
            f"got {oos_index!r}. Pass the index of the out-of-scope label in the label map."
        )


def _pick_false_rejection_threshold(
    probabilities: np.ndarray, y_true: np.ndarray, budget: float
) -> float:
    predicted = probabilities.argmax(axis=1)
    correct_confidences = np.sort(probabilities.max(axis=1)[predicted == y_true])
    if correct_confidences.size == 0:
        raise ValueError(
            "No dev example is classified correctly, so the false-rejection rule has no "
            "confidences to choose from. Check that `y_dev` uses the same label order as "
            "the columns of `probabilities_dev`."
        )
    # The small epsilon keeps a product such as 0.29 * 100 = 28.999999999999996 at 29.
    allowed = math.floor(budget * correct_confidences.size + 1e-9)
    # Rejecting inputs strictly below the (allowed + 1)-th smallest correct confidence
    # rejects at most `allowed` correct ones, and any larger threshold rejects one more.
    return float(correct_confidences[allowed])


def _search_oos_f1_threshold(
    probabilities: np.ndarray, y_true: np.ndarray, oos_index: int
) -> tuple[float, float]:
    """Return the threshold with the best dev macro-F1, and that macro-F1.

    Raising the threshold past an input turns its prediction into `oos_index`,
    so one pass over the inputs in ascending confidence scores every
    threshold while updating the counts of at most three classes per input.
    """
    confidences = probabilities.max(axis=1)
    order = np.argsort(confidences, kind="stable")
    sorted_confidences = confidences[order]
    predicted = probabilities.argmax(axis=1)[order]
    truth = y_true[order]

    tally = _F1Tally(predicted, truth, n_classes=probabilities.shape[1])
    best_score, best_cut = tally.macro_f1(), 0
    for cut in range(1, len(order)):
        tally.reject(int(predicted[cut - 1]), int(truth[cut - 1]), oos_index)
        # Inputs with tied confidences are rejected together, so a cut between ties
        # is unreachable. The tolerance keeps float drift from breaking ties upwards.
        is_reachable = sorted_confidences[cut] != sorted_confidences[cut - 1]
        if is_reachable and tally.macro_f1() > best_score + 1e-12:
            best_score, best_cut = tally.macro_f1(), cut
    threshold = 0.0 if best_cut == 0 else float(sorted_confidences[best_cut])
    return threshold, best_score


class _F1Tally:
    """Per-class true-positive, false-positive and false-negative counts with a running F1 sum.

    Classes with no true and no predicted input are left out of the macro
    average, as scikit-learn's `f1_score(average="macro")` does without `labels`.
    """

    def __init__(self, predicted: np.ndarray, truth: np.ndarray, *, n_classes: int) -> None:
        hit = predicted == truth
        self.true_positive = np.bincount(predicted[hit], minlength=n_classes)
        self.false_positive = np.bincount(predicted[~hit], minlength=n_classes)
        self.false_negative = np.bincount(truth[~hit], minlength=n_classes)
        f1 = [self._class_f1(index) for index in range(n_classes)]
        self.f1_sum = float(sum(score for score in f1 if score is not None))
        self.n_present = sum(score is not None for score in f1)

    def macro_f1(self) -> float:
        return self.f1_sum / max(self.n_present, 1)

    def reject(self, predicted: int, truth: int, oos_index: int) -> None:
        """Change one input's prediction from `predicted` to `oos_index`."""
        if predicted == oos_index:
            return
        touched = {predicted, truth, oos_index}
        for index in touched:
            self._remove_from_sum(index)
        self._count(predicted, truth, step=-1)
        self._count(oos_index, truth, step=1)
        for index in touched:
            self._add_to_sum(index)

    def _count(self, predicted: int, truth: int, *, step: int) -> None:
        if predicted == truth:
            self.true_positive[predicted] += step
        else:
            self.false_positive[predicted] += step
            self.false_negative[truth] += step

    def _class_f1(self, index: int) -> float | None:
        denominator = (
            2 * self.true_positive[index] + self.false_positive[index] + self.false_negative[index]
        )
        return float(2 * self.true_positive[index] / denominator) if denominator else None

    def _remove_from_sum(self, index: int) -> None:
        score = self._class_f1(index)
        if score is not None:
            self.f1_sum -= score
            self.n_present -= 1

    def _add_to_sum(self, index: int) -> None:
        score = self._class_f1(index)
        if score is not None:
            self.f1_sum += score
            self.n_present += 1


def _describe_choice(
    probabilities: np.ndarray,
    y_true: np.ndarray,
    *,
    oos_index: int | None,
    threshold: float,
    rule: ThresholdRule,
) -> ThresholdChoice:
    predicted = probabilities.argmax(axis=1)
    accepted = compute_accepted_mask(probabilities, threshold=threshold, oos_index=oos_index)
    correct = predicted == y_true
    if oos_index is not None:
        # A correct out-of-scope prediction is a correct rejection, not a false one.
        correct &= y_true != oos_index
    n_correct = int(correct.sum())
    return ThresholdChoice(
        rule=rule,
        threshold=threshold,
        n_dev=int(y_true.shape[0]),
        dev_coverage=float(accepted.mean()),
        dev_accuracy_accepted=float(correct[accepted].mean()) if accepted.any() else None,
        dev_false_rejection=float((correct & ~accepted).sum() / n_correct) if n_correct else 0.0,
    )
