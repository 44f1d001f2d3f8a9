"""Tests for writing and rendering evaluation reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.evaluation import (
    ClassificationReport,
    evaluate_predictions,
    load_report,
    render_markdown,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABELS = ["balance", "transfer", "oos"]
HISTORY = [
    {"loss": 1.2, "epoch": 0.5, "step": 5},
    {"eval_loss": 0.9, "eval_accuracy": 0.6, "eval_macro_f1": 0.5, "epoch": 1.0, "step": 10},
]


@pytest.fixture
def report(make_rows) -> ClassificationReport:
    # "balance" is always right, "transfer" half right, so it is the weakest in-scope class.
    probabilities = make_rows([0, 0, 1, 0, 2, 1], [0.9, 0.8, 0.7, 0.4, 0.9, 0.6], 3)
    return evaluate_predictions(
        y_true=[0, 0, 1, 1, 2, 2],
        probabilities=probabilities,
        labels=LABELS,
        threshold=0.5,
        oos_label="oos",
    )


def test_write_report_writes_all_files(tmp_path, report):
    files = write_report(report, tmp_path / "eval", title="clinc / lora", log_history=HISTORY)

    assert files.json == tmp_path / "eval" / "report.json"
    assert files.markdown == tmp_path / "eval" / "report.md"
    assert files.confusion_matrix == tmp_path / "eval" / "confusion_matrix.png"
    assert files.training_curves == tmp_path / "eval" / "training_curves.png"
    for png in (files.confusion_matrix, files.training_curves):
        assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_write_report_skips_curves_without_history(tmp_path, report):
    files = write_report(report, tmp_path, title="clinc / lora")

    assert files.training_curves is None
    assert not (tmp_path / "training_curves.png").exists()
    assert "training_curves.png" not in files.markdown.read_text(encoding="utf-8")


def test_write_report_plots_empty_history(tmp_path, report):
    files = write_report(report, tmp_path, title="clinc / lora", log_history=[])

    assert files.training_curves is not None
    assert files.training_curves.read_bytes()[:8] == PNG_SIGNATURE


def test_report_json_round_trips(tmp_path, report):
    extra = {
        "model": "all-MiniLM-L6-v2",
        "method": "lora",
        "data_fingerprint": "3f2a9c",
        "train_seconds": 41.5,
        "finished_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "output_dir": Path("runs/clinc"),
    }

    files = write_report(report, tmp_path, title="clinc / lora", extra=extra)
    document = load_report(files.json)

    assert document.report == report
    assert document.title == "clinc / lora"
    assert document.extra["model"] == "all-MiniLM-L6-v2"
    assert document.extra["train_seconds"] == 41.5
    assert document.extra["finished_at"] == "2025-01-02T03:04:05Z"
    assert document.extra["output_dir"] == "runs/clinc"
    raw = json.loads(files.json.read_text(encoding="utf-8"))
    assert raw["report"]["accuracy"] == report.accuracy
    assert raw["report"]["out_of_scope"]["threshold"] == 0.5


def test_write_report_rejects_unserialisable_extra(tmp_path, report):
    with pytest.raises(TypeError, match="`extra`"):
        write_report(report, tmp_path, title="clinc", extra={"model": object()})


def test_markdown_contains_headline_numbers(tmp_path, report):
    files = write_report(report, tmp_path, title="clinc / lora", log_history=HISTORY)

    markdown = files.markdown.read_text(encoding="utf-8")

    assert markdown.startswith("# clinc / lora\n")
    assert f"| accuracy | {report.accuracy:.4f} |" in markdown
    assert f"| macro-F1 | {report.macro_f1:.4f} |" in markdown
    assert f"| weighted F1 | {report.weighted_f1:.4f} |" in markdown
    assert f"| ECE (15 bins) | {report.ece:.4f} |" in markdown
    assert "| examples | 6 |" in markdown
    assert "![Confusion matrix](confusion_matrix.png)" in markdown
    assert "![Training curves](training_curves.png)" in markdown


def test_markdown_contains_out_of_scope_block(report):
    markdown = render_markdown(report, title="clinc")

    summary = report.out_of_scope
    assert summary is not None
    assert "## Out-of-scope rejection" in markdown
    assert "| threshold | 0.5000 |" in markdown
    assert f"| coverage (share accepted) | {summary.coverage:.4f} |" in markdown
    assert f"| out-of-scope F1 | {summary.oos_f1:.4f} |" in markdown


def test_markdown_lists_weakest_class_first(report):
    markdown = render_markdown(report, title="clinc")

    table = markdown.split("## Per-class metrics (lowest F1 first)")[1]
    rows = [
        line for line in table.splitlines() if line.startswith("| ") and "precision" not in line
    ]
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows]
    f1_values = [float(row.split(" | ")[3]) for row in rows]
    assert f1_values == sorted(f1_values)
    assert names[-1] == "balance"


def test_markdown_escapes_table_cells(make_rows):
    probabilities = make_rows([0, 1], [0.9, 0.9], 2)
    report = evaluate_predictions(
        y_true=[0, 1], probabilities=probabilities, labels=["a|b", "c\nd"]
    )

    markdown = render_markdown(report, title="pipes", extra={"method": "full|fine-tune"})

    assert "| method | full\\|fine-tune |" in markdown
    assert "| a\\|b |" in markdown
    assert "| c d |" in markdown
    assert "## Out-of-scope rejection" not in markdown
    assert "## Plots" not in markdown
