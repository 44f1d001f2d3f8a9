"""Classifier evaluation: metrics, calibration, out-of-scope threshold, plots and reports.

Inputs are numpy arrays of class probabilities, so this package imports
neither torch nor transformers. Plots use matplotlib's Agg canvas directly
and leave the global backend alone.

Typical use after predicting on the dev and test splits::

    choice = choose_oos_threshold(probabilities_dev=dev_probs, y_dev=dev_labels)
    report = evaluate_predictions(
        y_true=test_labels, probabilities=test_probs, labels=names, threshold=choice.threshold
    )
    write_report(report, run_dir / "eval", title="banking77 / lora", log_history=history)
"""

from shared.evaluation.calibration import (
    DEFAULT_N_BINS,
    ReliabilityBin,
    expected_calibration_error,
    reliability_bins,
)
from shared.evaluation.metrics import (
    ClassificationReport,
    ClassMetrics,
    OutOfScopeSummary,
    evaluate_predictions,
)
from shared.evaluation.plots import find_cjk_font, plot_confusion_matrix, plot_training_curves
from shared.evaluation.report import (
    ReportDocument,
    ReportFiles,
    load_report,
    render_markdown,
    write_report,
)
from shared.evaluation.threshold import (
    ThresholdChoice,
    ThresholdRule,
    choose_oos_threshold,
    compute_accepted_mask,
)

__all__ = [
    "DEFAULT_N_BINS",
    "ClassMetrics",
    "ClassificationReport",
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
