"""Where a benchmark leaves its latest figures: bench/results/<name>.csv, replaced by every run (never
appended to), read by bench/tables.py into docs/performance.md."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, rows: Sequence[Mapping[str, object]]) -> Path:
    """Replace bench/results/<name>.csv with ``rows`` (their keys, in order, are the columns)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
