"""Evaluation report files: JSON for machines, Markdown and PNG plots for people."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticSerializationError

from shared.evaluation.metrics import ClassificationReport, OutOfScopeSummary
from shared.evaluation.plots import plot_confusion_matrix, plot_training_curves

__all__ = ["ReportDocument", "ReportFiles", "load_report", "render_markdown", "write_report"]

logger = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "training_curves.png"


class ReportDocument(BaseModel):
    """The content of ``report.json``: a titled report and the run details beside it."""

    model_config = ConfigDict(frozen=True)

    title: str = Field(description="Heading of the report, e.g. the model and data set.")
    report: ClassificationReport = Field(description="The evaluation metrics.")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Run details such as model name, method, data fingerprint and timings.",
    )


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the files that `write_report` wrote."""

    json: Path
    markdown: Path
    confusion_matrix: Path
    training_curves: Path | None


def write_report(
    report: ClassificationReport,
    directory: Path,
    *,
    title: str,
    extra: Mapping[str, Any] | None = None,
    log_history: Sequence[Mapping[str, Any]] | None = None,
) -> ReportFiles:
    """Write ``report.json``, ``report.md`` and the PNG plots into a folder.

    Existing files of the same names are overwritten.

    Args:
        report: The evaluation to write.
        directory: Output folder, created when missing.
        title: Heading of the Markdown page, also stored in the JSON.
        extra: JSON-serialisable run details stored beside the report.
        log_history: The `Trainer.state.log_history` of the run. When given,
            ``training_curves.png`` is written too, even for an empty list.

    Returns:
        The paths written.

    Raises:
        TypeError: If a value in `extra` cannot be serialised to JSON.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    document = ReportDocument(title=title, report=report, extra=dict(extra or {}))
    try:
        payload = document.model_dump_json(indent=2)
    except PydanticSerializationError as exc:
        raise TypeError(
            f"`extra` must contain only JSON-serialisable values (str, numbers, lists, "
            f"dicts, paths, dates): {exc}"
        ) from exc

    json_path = folder / REPORT_JSON
    json_path.write_text(payload + "\n", encoding="utf-8")
    confusion_path = plot_confusion_matrix(report, folder / CONFUSION_PNG, title=title)
    curves_path = None
    if log_history is not None:
        curves_path = plot_training_curves(log_history, folder / CURVES_PNG, title=title)
    markdown = render_markdown(
        report,
        title=title,
        extra=document.extra,
        confusion_image=CONFUSION_PNG,
        curves_image=CURVES_PNG if curves_path else None,
    )
    markdown_path = folder / REPORT_MARKDOWN
    markdown_path.write_text(markdown, encoding="utf-8")

    logger.info(
        "evaluation report written: directory=%s accuracy=%.4f macro_f1=%.4f",
        folder,
        report.accuracy,
        report.macro_f1,
    )
    return ReportFiles(json_path, markdown_path, confusion_path, curves_path)


def load_report(path: Path) -> ReportDocument:
    """Read a ``report.json`` written by `write_report`.

    Raises:
        FileNotFoundError: If `path` does not exist.
        pydantic.ValidationError: If the file is not a valid report.
    """
    return ReportDocument.model_validate_json(Path(path).read_text(encoding="utf-8"))


def render_markdown(
    report: ClassificationReport,
    *,
    title: str,
    extra: Mapping[str, Any] | None = None,
    confusion_image: str | None = None,
    curves_image: str | None = None,
) -> str:
    """Render the report as a Markdown page.

    The page has a headline metrics table, the out-of-scope block when there
    is one, the run details from `extra`, a per-class table sorted by F1 with
    the weakest classes first, and links to the plots that are named.

    Args:
        report: The evaluation to render.
        title: Heading of the page.
        extra: Run details shown as a two-column table.
        confusion_image: Relative path of the confusion-matrix PNG to link.
        curves_image: Relative path of the training-curves PNG to link.

    Returns:
        The Markdown text, ending in a newline.
    """
    sections = [f"# {_escape(title)}", _render_headline(report)]
    if report.out_of_scope is not None:
        sections.append(_render_out_of_scope(report.out_of_scope))
    if extra:
        sections.append(_render_extra(extra))
    sections.append(_render_per_class(report))
    images = [("Confusion matrix", confusion_image), ("Training curves", curves_image)]
    links = [f"![{name}]({target})" for name, target in images if target]
    if links:
        sections.append("## Plots\n\n" + "\n\n".join(links))
    return "\n\n".join(sections) + "\n"


def _render_headline(report: ClassificationReport) -> str:
    rows = [
        ("examples", str(report.n_examples)),
        ("classes", str(len(report.labels))),
        ("accuracy", _format_score(report.accuracy)),
        ("macro-F1", _format_score(report.macro_f1)),
        ("weighted F1", _format_score(report.weighted_f1)),
        (f"ECE ({report.ece_bins} bins)", _format_score(report.ece)),
    ]
    return _render_table(("metric", "value"), rows)


def _render_out_of_scope(summary: OutOfScopeSummary) -> str:
    rows = [
        ("threshold", _format_score(summary.threshold)),
        ("out-of-scope label", _escape(summary.oos_label) if summary.oos_label else "none"),
        ("coverage (share accepted)", _format_score(summary.coverage)),
        ("accepted inputs", str(summary.n_accepted)),
        ("accuracy on accepted inputs", _format_score(summary.accepted_accuracy)),
        (
            "in-scope accuracy (rejections count as errors)",
            _format_score(summary.in_scope_accuracy),
        ),
    ]
    if summary.oos_label is not None:
        rows += [
            ("out-of-scope precision", _format_score(summary.oos_precision)),
            ("out-of-scope recall", _format_score(summary.oos_recall)),
            ("out-of-scope F1", _format_score(summary.oos_f1)),
            ("out-of-scope examples", str(summary.oos_support)),
        ]
    return "## Out-of-scope rejection\n\n" + _render_table(("metric", "value"), rows)


def _render_extra(extra: Mapping[str, Any]) -> str:
    rows = [(_escape(str(key)), _escape(str(value))) for key, value in extra.items()]
    return "## Run details\n\n" + _render_table(("field", "value"), rows)


def _render_per_class(report: ClassificationReport) -> str:
    # Weakest classes first. Among equal F1, the class with more examples matters more.
    ordered = sorted(
        report.per_class.items(), key=lambda item: (item[1].f1, -item[1].support, item[0])
    )
    rows = [
        (
            _escape(name),
            _format_score(metrics.precision),
            _format_score(metrics.recall),
            _format_score(metrics.f1),
            str(metrics.support),
        )
        for name, metrics in ordered
    ]
    header = ("label", "precision", "recall", "F1", "support")
    return "## Per-class metrics (lowest F1 first)\n\n" + _render_table(header, rows)


def _render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _format_score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _escape(text: str) -> str:
    """Escape the characters that would break a Markdown table cell or start markup."""
    for character in ("\\", "|", "*", "`", "[", "]", "<", ">"):
        text = text.replace(character, "\\" + character)
    return " ".join(text.splitlines())
