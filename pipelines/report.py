"""Printing training and evaluation results in the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from pipelines.jobs import ClassifierJobResult
from shared.evaluation import ClassificationReport, render_markdown

__all__ = ["print_classifier_result", "print_report"]


def print_report(console: Console, report: ClassificationReport, *, title: str) -> None:
    """Print an evaluation report as Markdown."""
    console.print(Markdown(render_markdown(report, title=title)))


def print_classifier_result(console: Console, result: ClassifierJobResult) -> None:
    """Print the headline figures, where the files went and the registry version."""
    trained = result.trained
    table = Table(title="Training result")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in trained.headline_metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"Model folder: {trained.model_dir}")
    console.print(f"Report: {trained.report_dir / 'report.md'}")
    if result.version is not None:
        console.print(
            f"Registered as [bold]{result.version.reference}[/bold] (stage {result.version.stage})."
        )
