"""Print the benchmark results files as Markdown tables for BENCHMARKS.md.

Usage:
    python tests/benchmarks/render_tables.py [NAME ...]

With no NAME, every ``tests/benchmarks/results/*.json`` file is printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"
FIGURES = (
    "accuracy",
    "macro_f1",
    "ece",
    "recall_at_5",
    "mrr_at_5",
    "mean_cosine",
    "rouge_l",
    "eos_rate",
    "fallback_rate",
    "train_loss",
    "eval_loss",
    "p50_ms",
    "p95_ms",
    "ttft_p50_ms",
    "tokens_per_s",
    "train_seconds",
    "n_train",
    "n_test",
    "n_tickets",
)


def render(path: Path) -> str:
    """Return one results file as a Markdown table, one row per benchmark row."""
    rows = json.loads(path.read_text())
    columns = [figure for figure in FIGURES if any(figure in row for row in rows)]
    lines = [
        f"| name | {' | '.join(columns)} | command |",
        f"| --- | {' | '.join('---:' for _ in columns)} | --- |",
    ]
    for row in rows:
        cells = [_format(row.get(column)) for column in columns]
        lines.append(f"| {row['name']} | {' | '.join(cells)} | `{row['command']}` |")
    return "\n".join(lines)


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.0f}"
    return "-" if value is None else str(value)


def main() -> None:
    names = sys.argv[1:] or sorted(path.stem for path in RESULTS_DIR.glob("*.json"))
    for name in names:
        print(f"### {name}\n")
        print(render(RESULTS_DIR / f"{name}.json"))
        print()


if __name__ == "__main__":
    main()
