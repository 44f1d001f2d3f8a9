"""`diptych models`, `diptych evaluate` and `diptych predict`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from pipelines._console import fail, make_console
from shared.errors import DiptychError
from shared.registry import (
    find_version,
    list_versions,
    promote_version,
    read_manifest,
    rollback_version,
)
from shared.storage import ensure_database_ready

models_app = typer.Typer(
    help="The model registry: list, show, promote, roll back.", no_args_is_help=True
)
console = make_console()


@models_app.callback()
def _prepare_registry() -> None:
    """Work with the model registry."""
    try:
        ensure_database_ready()
    except DiptychError as exc:
        raise fail(exc) from None


@models_app.command("list")
def list_command(name: str = typer.Argument(None, help="Only versions of this model.")) -> None:
    """List registered model versions, newest first per name."""
    table = Table(title="Model versions")
    for column in ("reference", "stage", "task", "method", "accuracy", "macro_f1", "created"):
        table.add_column(column)
    for row in list_versions(name):
        table.add_row(
            row.reference,
            row.stage,
            row.task,
            row.method,
            _figure(row.metrics.get("accuracy")),
            _figure(row.metrics.get("macro_f1")),
            row.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


def _figure(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


@models_app.command("show")
def show_command(
    reference: str = typer.Argument(..., help="NAME, NAME@VERSION, NAME@latest or NAME@STAGE."),
) -> None:
    """Print one version's manifest: labels, metrics, checksums, data fingerprint."""
    try:
        row = find_version(reference)
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    manifest = read_manifest(Path(row.path)) or {"note": "manifest.json is missing"}
    manifest["stage"] = row.stage
    manifest["path"] = row.path
    console.print_json(json.dumps(manifest, default=str))


@models_app.command("promote")
def promote_command(
    reference: str = typer.Argument(..., help="NAME@VERSION to put in production."),
) -> None:
    """Make a version the production one; the previous production version is archived."""
    try:
        row = promote_version(reference)
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    console.print(f"{row.reference} is now in production.")


@models_app.command("check-candidates")
def check_candidates_command(
    names: list[str] = typer.Argument(None, help="Model names (default: all)."),
    min_gain: float = typer.Option(
        0.0, min=0.0, help="How much better a candidate must be to be promoted."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Decide without promoting."),
) -> None:
    """Promote each newest candidate that beats production on held-out data."""
    from pipelines.retraining import check_candidates

    try:
        decisions = check_candidates(names or None, min_gain=min_gain, dry_run=dry_run)
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    if not decisions:
        console.print("No candidate is newer than its production version.")
        return
    table = Table(
        "name", "candidate", "production", "metric", "candidate", "production", "promoted", "reason"
    )
    for d in decisions:
        table.add_row(
            d.name,
            d.candidate,
            d.production,
            d.metric,
            _figure(d.candidate_value),
            _figure(d.production_value),
            "yes" if d.promoted else "no",
            d.reason,
        )
    console.print(table)


@models_app.command("rollback")
def rollback_command(
    name: str = typer.Argument(..., help="Model name."),
    to: int = typer.Option(
        None, "--to", help="Version to restore (default: the one before production)."
    ),
) -> None:
    """Put the previous version back into production."""
    try:
        row = rollback_version(name, to_version=to)
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    console.print(f"{row.reference} is now in production.")


def evaluate_command(
    model: str = typer.Option(
        ..., help="Registered model: NAME, NAME@VERSION, NAME@latest or NAME@STAGE."
    ),
    dataset: str = typer.Option(None, help="Named data set to evaluate on (its test split)."),
    file: Path = typer.Option(None, help="Your own labelled CSV, TSV or JSONL file instead."),
    text_column: str = typer.Option(
        "text", help="Column or JSON key holding the text (with --file)."
    ),
    label_column: str = typer.Option(
        "label", help="Column or JSON key holding the label (with --file)."
    ),
    split: str = typer.Option("test", help="Split of --dataset to use: test or dev."),
    seed: int = typer.Option(42, help="Seed of the split; use the one the model was trained with."),
    output_dir: Path = typer.Option(None, help="Write report.json, report.md and the plots here."),
) -> None:
    """Evaluate a registered classifier on a labelled split and print the report."""
    from pipelines.evaluate_job import run_evaluation

    try:
        run_evaluation(
            model=model,
            dataset=dataset,
            file=file,
            text_column=text_column,
            label_column=label_column,
            split=split,
            seed=seed,
            output_dir=output_dir,
            console=console,
        )
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None


def predict_command(
    texts: list[str] = typer.Argument(None, help="Texts to classify."),
    model: str = typer.Option(
        ..., help="Registered model: NAME, NAME@VERSION, NAME@latest or NAME@STAGE."
    ),
    file: Path = typer.Option(
        None, help="A text file with one input per line, instead of arguments."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per text."),
) -> None:
    """Classify texts with a registered model."""
    from shared.inference import TextClassifier

    inputs = list(texts or [])
    if file is not None:
        inputs.extend(_read_input_lines(file))
    if not inputs:
        raise fail(ValueError("Pass texts as arguments or `--file` with one text per line."))
    try:
        ensure_database_ready()
        classifier = TextClassifier.from_registry(model)
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    for text, prediction in zip(inputs, classifier.predict(inputs), strict=True):
        if as_json:
            print(json.dumps({"text": text, **prediction.__dict__}, ensure_ascii=False))
        else:
            print(_format_prediction(text, prediction))


def _read_input_lines(path: Path) -> list[str]:
    """Read one text per line from a UTF-8 file, as a CLI error on failure."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise fail(f"`--file` {str(path)!r} is not UTF-8 text; convert it to UTF-8.") from None
    except OSError as exc:
        raise fail(f"`--file` {str(path)!r} cannot be read: {exc.strerror}.") from None


_ECHO_CHARACTERS = 60


def _format_prediction(text: str, prediction: Any) -> str:
    """Format one tab-separated line: label, score, flags and the start of the text."""
    shown = " ".join(text.split())
    if len(shown) > _ECHO_CHARACTERS:
        shown = shown[: _ECHO_CHARACTERS - 3] + "..."
    if not prediction.is_ok:
        return f"skipped\t{prediction.error}\t{shown!r}"
    flags = [
        name
        for name, is_set in (
            ("out-of-scope", prediction.out_of_scope),
            ("truncated", prediction.truncated),
        )
        if is_set
    ]
    return f"{prediction.label}\t{prediction.score:.3f}\t{','.join(flags) or '-'}\t{shown}"
