"""Classification metrics for a fine-tuned classifier, computed from its probabilities.

The headline metrics, per-class table and confusion matrix use the argmax
prediction. A threshold or an out-of-scope label adds an `OutOfScopeSummary`
that describes rejection separately, so the two views never mix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from shared.evaluation._checks import (
    check_class_indices,
    check_fraction,
    check_labels,
    check_probabilities,
)
from shared.evaluation.calibration import DEFAULT_N_BINS, expected_calibration_error
from shared.evaluation.threshold import compute_accepted_mask

__all__ = ["ClassMetrics", "ClassificationReport", "OutOfScopeSummary", "evaluate_predictions"]

logger = logging.getLogger(__name__)


class ClassMetrics(BaseModel):
    """Precision, recall, F1 and support of one class."""

    model_config = ConfigDict(frozen=True)

    precision: float = Field(
        ge=0.0, description="Share of predictions of the class that are right."
    )
    recall: float = Field(ge=0.0, description="Share of the class's examples predicted as it.")
    f1: float = Field(ge=0.0, description="Harmonic mean of precision and recall.")
    support: int = Field(ge=0, description="Number of examples whose true label is the class.")


class OutOfScopeSummary(BaseModel):
    """Rejection statistics of an out-of-scope threshold and label on one split."""

    model_config = ConfigDict(frozen=True)

    threshold: float | None = Field(
        description="Inputs whose maximum probability is below this are rejected, or None when "
        "only the out-of-scope class rejects inputs."
    )
    oos_label: str | None = Field(
        description="Name of the out-of-scope label, or None when the label set has none."
    )
    coverage: float = Field(description="Share of inputs accepted as in scope.")
    n_accepted: int = Field(ge=0, description="Number of inputs accepted as in scope.")
    accepted_accuracy: float | None = Field(
        description="Accuracy on the accepted inputs, or None when none is accepted."
    )
    in_scope_accuracy: float | None = Field(
        description="Share of truly in-scope inputs that are accepted and classified right, "
        "so a rejection counts as an error. None when no input is truly in scope."
    )
    oos_precision: float | None = Field(
        default=None, description="Share of rejected inputs that are truly out of scope."
    )
    oos_recall: float | None = Field(
        default=None, description="Share of truly out-of-scope inputs that are rejected."
    )
    oos_f1: float | None = Field(default=None, description="F1 of the out-of-scope class.")
    oos_support: int | None = Field(
        default=None, description="Number of inputs whose true label is out of scope."
    )


class ClassificationReport(BaseModel):
    """Evaluation of a classifier on one labelled split, serialisable to JSON."""

    model_config = ConfigDict(frozen=True)

    labels: list[str] = Field(description="Label names in class-index order.")
    n_examples: int = Field(ge=1, description="Number of evaluated examples.")
    accuracy: float = Field(ge=0.0, description="Share of argmax predictions that are right.")
    macro_f1: float = Field(
        ge=0.0,
        description="Unweighted mean F1 over the classes that are true or predicted at least once.",
    )
    weighted_f1: float = Field(ge=0.0, description="Mean F1 weighted by class support.")
    ece: float = Field(ge=0.0, description="Expected calibration error of the maximum probability.")
    ece_bins: int = Field(ge=1, description="Number of equal-width confidence bins behind `ece`.")
    per_class: dict[str, ClassMetrics] = Field(
        description="Metrics of every label, in label order."
    )
    confusion: list[list[int]] = Field(
        description="Confusion counts: rows are true labels, columns predicted labels."
    )
    out_of_scope: OutOfScopeSummary | None = Field(
        default=None,
        description="Rejection statistics, or None when no threshold or OOS label was given.",
    )

    @model_validator(mode="after")
    def _check_consistent_shapes(self) -> ClassificationReport:
        n_classes = len(self.labels)
        if list(self.per_class) != self.labels:
            raise ValueError(
                f"`per_class` keys must equal `labels` in order, got {list(self.per_class)!r}."
            )
        shape_ok = len(self.confusion) == n_classes and all(
            len(row) == n_classes for row in self.confusion
        )
        if not shape_ok:
            raise ValueError(
                f"`confusion` must be a {n_classes}x{n_classes} matrix, one row and column "
                "per label."
            )
        return self


def evaluate_predictions(
    *,
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    labels: Sequence[str],
    threshold: float | None = None,
    oos_label: str | None = None,
    n_bins: int = DEFAULT_N_BINS,
) -> ClassificationReport:
    """Compute accuracy, F1, calibration and the confusion matrix of a classifier.

    Args:
        y_true: True class index of each example.
        probabilities: Class probabilities, shape (n, C), each row summing to 1.
        labels: The C label names in column order.
        threshold: Out-of-scope threshold on the maximum probability, usually
            from `choose_oos_threshold` on the dev split.
        oos_label: Name of the out-of-scope label in `labels`, if there is one.
        n_bins: Number of equal-width confidence bins for the ECE.

    Returns:
        The report. It has an `out_of_scope` block when `threshold` or
        `oos_label` is given.

    Raises:
        ValueError: If an argument is empty, has the wrong shape or range, or
            `oos_label` is not one of `labels`.
        TypeError: If `y_true` or `labels` hold values of the wrong type.
    """
    scores = check_probabilities(probabilities, name="probabilities")
    n_examples, n_classes = scores.shape
    truth = check_class_indices(y_true, name="y_true", n_examples=n_examples, n_classes=n_classes)
    names = check_labels(labels, n_classes=n_classes)
    if threshold is not None:
        threshold = check_fraction(threshold, name="threshold")
    oos_index = _find_oos_index(oos_label, names)

    predicted = scores.argmax(axis=1)
    out_of_scope = None
    if threshold is not None or oos_index is not None:
        out_of_scope = _summarize_out_of_scope(
            scores, truth, threshold=threshold, oos_index=oos_index, names=names
        )
    report = ClassificationReport(
        labels=names,
        n_examples=n_examples,
        accuracy=float((predicted == truth).mean()),
        macro_f1=float(f1_score(truth, predicted, average="macro", zero_division=0)),
        weighted_f1=float(f1_score(truth, predicted, average="weighted", zero_division=0)),
        ece=expected_calibration_error(scores.max(axis=1), predicted == truth, n_bins),
        ece_bins=n_bins,
        per_class=_compute_per_class(truth, predicted, names),
        confusion=confusion_matrix(truth, predicted, labels=np.arange(n_classes)).tolist(),
        out_of_scope=out_of_scope,
    )
    logger.debug(
        "evaluated: n_examples=%d accuracy=%.4f macro_f1=%.4f",
        n_examples,
        report.accuracy,
        report.macro_f1,
    )
    return report


def _find_oos_index(oos_label: str | None, names: list[str]) -> int | None:
    if oos_label is None:
        return None
    if oos_label not in names:
        raise ValueError(
            f"`oos_label` {oos_label!r} is not one of `labels`. Pass the exact name of the "
            "out-of-scope label, or None when the label set has none."
        )
    return names.index(oos_label)


def _compute_per_class(
    truth: np.ndarray, predicted: np.ndarray, names: list[str]
) -> dict[str, ClassMetrics]:
    # labels= lists every class, so a class absent from both arrays still gets a row of zeros.
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=np.arange(len(names)), zero_division=0
    )
    return {
        name: ClassMetrics(
            precision=float(precision[index]),
            recall=float(recall[index]),
            f1=float(f1[index]),
            support=int(support[index]),
        )
        for index, name in enumerate(names)
    }


def _summarize_out_of_scope(
    scores: np.ndarray,
    truth: np.ndarray,
    *,
    threshold: float | None,
    oos_index: int | None,
    names: list[str],
) -> OutOfScopeSummary:
    predicted = scores.argmax(axis=1)
    accepted = compute_accepted_mask(scores, threshold=threshold, oos_index=oos_index)
    correct = predicted == truth
    in_scope = truth != oos_index if oos_index is not None else np.ones_like(accepted)
    summary = OutOfScopeSummary(
        threshold=threshold,
        oos_label=names[oos_index] if oos_index is not None else None,
        coverage=float(accepted.mean()),
        n_accepted=int(accepted.sum()),
        accepted_accuracy=float(correct[accepted].mean()) if accepted.any() else None,
        in_scope_accuracy=float((accepted & correct)[in_scope].mean()) if in_scope.any() else None,
    )
    if oos_index is None:
        return summary

    # Rejected inputs are the predicted out-of-scope class, right or wrong.
    is_oos = truth == oos_index
    precision, recall, f1, _ = precision_recall_fscore_support(
        is_oos, ~accepted, average="binary", zero_division=0
    )
    return summary.model_copy(
        update={
            "oos_precision": float(precision),
            "oos_recall": float(recall),
            "oos_f1": float(f1),
            "oos_support": int(is_oos.sum()),
        }
    )
