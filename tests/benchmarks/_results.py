"""Write benchmark rows to ``tests/benchmarks/results/<name>.json``.

Each row has `name`, figures with the unit in the key, `command` and `date`.
Rows with the same `name` replace the old ones, so one method can be re-run
without losing the others.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def describe_machine() -> str:
    """Return a one-line description of the CPU and core count."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def write_rows(result_name: str, rows: list[dict[str, Any]]) -> Path:
    """Merge `rows` into the results file by `name` and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{result_name}.json"
    existing: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
    names = {row["name"] for row in rows}
    merged = [row for row in existing if row["name"] not in names]
    today = dt.date.today().isoformat()
    for row in rows:
        merged.append({**row, "date": row.get("date", today), "machine": describe_machine()})
    path.write_text(json.dumps(merged, indent=2) + "\n")
    return path
