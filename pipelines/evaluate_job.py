"""The `diptych evaluate` job."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from pipelines.report import print_report
from shared.errors import ConfigurationError
from shared.evaluation import write_report
from shared.registry import find_version, verify_version
from shared.storage import ensure_database_ready
from shared.training.classifier import evaluate_classifier_folder

__all__ = ["run_evaluation"]


def run_evaluation(
    *,
    model: str,
    dataset: str | None,
    file: Path | None,
    text_column: str,
    label_column: str,
    split: str,
    seed: int,
    output_dir: Path | None,
    console: Console,
) -> None:
    """Evaluate a registered classifier and print (and optionally write) the report.

    Raises:
        ConfigurationError: If neither or both of `dataset` and `file` are given, or
            `split` is not test or dev.
    """
    from pipelines.datasets import load_dataset_splits, read_table

    if (dataset is None) == (file is None):
        raise ConfigurationError("Pass exactly one of `--dataset` or `--file`.")
    if split not in {"test", "dev"}:
        raise ConfigurationError(f"`--split` must be 'test' or 'dev', got {split!r}.")
    ensure_database_ready()
    row = find_version(model)
    model_dir = verify_version(row)
    if dataset is not None:
        splits = load_dataset_splits(dataset, seed=seed)
        examples = splits.test if split == "test" else splits.dev
    else:
        assert file is not None
        examples = read_table(file, text_column=text_column, label_column=label_column)
    report = evaluate_classifier_folder(model_dir, examples)
    title = f"{row.reference} on {dataset or file} ({split if dataset else 'file'})"
    print_report(console, report, title=title)
    if output_dir is not None:
        write_report(report, output_dir, title=title, extra={"model": row.reference})
        console.print(f"Report written to {output_dir}")
