"""Published against reproduced: every published figure (``published/*.csv``) of a configured system,
next to the figure of the run made the same way, flagged beyond the tolerance."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from beirflow.data.registry import BEIR_ZERO_SHOT
from beirflow.report.results import BEIR_AVERAGE, Results, Row, SystemInfo, beir_average, row_value


@dataclass(frozen=True)
class Published:
    dataset: str
    system: str
    metric: str
    value: float
    split: str
    first_stage: str
    depth: str
    conventions: str
    source: str
    file: str
    line: int


PUBLISHED_COLUMNS = ("dataset", "system", "metric", "value", "split", "first_stage", "depth", "conventions", "source")


def read_published(paths: Iterable[Path]) -> list[Published]:
    from beirflow.workflow.errors import DataError

    rows = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in PUBLISHED_COLUMNS if column not in (reader.fieldnames or [])]
            if missing:
                raise DataError(path, f"no column '{missing[0]}' (columns: {', '.join(PUBLISHED_COLUMNS)})", line=1)
            for line, record in enumerate(reader, start=2):
                try:
                    value = float(record["value"])
                except ValueError:
                    raise DataError(path, f"value '{record['value']}' is not a number", line=line) from None
                rows.append(
                    Published(
                        **{column: record[column] for column in PUBLISHED_COLUMNS if column != "value"},
                        value=value,
                        file=str(path),
                        line=line,
                    )
                )
    return rows


@dataclass(frozen=True)
class Check:
    published: Published
    system: str  # the configured system compared
    reproduced: float | None
    status: str  # match | differs | not run | not comparable
    note: str = ""

    @property
    def difference(self) -> float | None:
        return None if self.reproduced is None else self.reproduced - self.published.value


def check_published(
    published: Sequence[Published],
    results: Results,
    systems: Sequence[SystemInfo],
    rows: Sequence[Row],
    beir: Sequence[Row],
    tolerance: float,
) -> tuple[list[Check], int]:
    """Every published figure of a configured system, checked; and how many concern no configured system."""
    by_id = {system.published_id: system for system in systems}
    checks, unmatched = [], 0
    for row in published:
        system = by_id.get(row.system)
        if system is None:
            unmatched += 1
            continue
        if row.dataset == BEIR_AVERAGE:
            average = beir_average(results, beir, system.name, row.metric, require_all=False)
            if average.value is None:
                checks.append(Check(row, system.name, None, "not run"))
            elif len(average.rows) < len(BEIR_ZERO_SHOT):
                checks.append(
                    Check(
                        row,
                        system.name,
                        average.value,
                        "not comparable",
                        f"averages {len(average.rows)} of {len(BEIR_ZERO_SHOT)} BEIR datasets",
                    )
                )
            else:
                checks.append(_checked(row, system.name, average.value, tolerance))
            continue
        table_row = next((candidate for candidate in rows if candidate.name == row.dataset), None)
        value = row_value(results, table_row, system.name, row.metric) if table_row else None
        checks.append(Check(row, system.name, None, "not run") if value is None else _checked(row, system.name, value, tolerance))
    return checks, unmatched


def _checked(row: Published, system: str, value: float, tolerance: float) -> Check:
    return Check(row, system, value, "match" if abs(value - row.value) <= tolerance + 1e-12 else "differs")
