"""The demo's figures, the benchmark figures they are compared with, and the summary table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

__all__ = [
    "RESULTS_DIR",
    "BenchmarkFigure",
    "Figure",
    "StageReport",
    "load_benchmark_value",
    "render_summary",
    "write_summary",
]

# The benchmark scripts write their rows here; a checkout has the folder, an
# installed wheel does not, and then the summary leaves the column empty.
RESULTS_DIR = Path(__file__).resolve().parents[2] / "tests" / "benchmarks" / "results"


@dataclass(frozen=True)
class BenchmarkFigure:
    """Location of the same measure in a benchmark's results: file, row name and field."""

    result: str
    row: str
    field: str


@dataclass(frozen=True)
class Figure:
    """One measure the demo prints, with the benchmark figure it should match, if any."""

    label: str
    value: float | int
    benchmark: BenchmarkFigure | None = None


@dataclass
class StageReport:
    """Figures of one demo stage, with its duration and notes to print."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def load_benchmark_value(
    figure: BenchmarkFigure, results_dir: Path = RESULTS_DIR
) -> float | int | None:
    """Return the recorded benchmark value, or None when the file, row or field is missing."""
    path = results_dir / f"{figure.result}.json"
    if not path.is_file():
        return None
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    for row in reversed(rows if isinstance(rows, list) else []):
        if isinstance(row, dict) and row.get("name") == figure.row:
            value = row.get(figure.field)
            return value if isinstance(value, int | float) else None
    return None


def _format(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}"


def render_summary(
    reports: list[StageReport], *, total_seconds: float, results_dir: Path = RESULTS_DIR
) -> Table:
    """Build the summary table: one row per figure, the benchmark beside it, seconds per stage."""
    table = Table(title=f"Diptych demo summary ({total_seconds:.0f} s in all)")
    table.add_column("stage")
    table.add_column("measure")
    table.add_column("this run", justify="right")
    table.add_column("benchmark", justify="right")
    table.add_column("stage seconds", justify="right")
    for report in reports:
        for position, figure in enumerate(report.figures):
            recorded = (
                load_benchmark_value(figure.benchmark, results_dir) if figure.benchmark else None
            )
            table.add_row(
                report.name if position == 0 else "",
                figure.label,
                _format(figure.value),
                _format(recorded),
                f"{report.seconds:.0f}" if position == 0 else "",
            )
        table.add_section()
    return table


def write_summary(reports: list[StageReport], path: Path, *, total_seconds: float) -> Path:
    """Write the figures as JSON, for scripts that compare runs."""
    payload: dict[str, Any] = {
        "total_seconds": round(total_seconds, 1),
        "stages": [asdict(report) for report in reports],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
