"""What the report and the leaderboard read: the systems, the means and per-query values of every
evaluation, the table's rows, and the one BEIR average.

Rows are one per dataset, CQADupStack's forums folded into one row once all 12 are there. The BEIR
average is taken over BEIR's 18 zero-shot datasets only (never MS MARCO, never a dataset that is not
BEIR's), each once; the report and the leaderboard both name the rows they average.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from beirflow.data.registry import BEIR_ZERO_SHOT, CQADUPSTACK, CQADUPSTACK_FORUMS, is_cqadupstack_forum, leaderboard_group

BEIR_AVERAGE = "beir-average"


@dataclass(frozen=True)
class SystemInfo:
    name: str
    family: str  # its config section
    label: str
    series: str | None = None
    parameters: float | None = None
    published_as: str | None = None
    first_stage: str | None = None  # the system it is built on, if one
    # How the family's record (beirflow.workflow.family.FamilyReport) shows it:
    kind: str = ""  # the noun after its label ('reranker'); the family's name where empty
    role: str = ""  # what the findings compare it as: 'reranker', 'dense retriever', ...
    markers: tuple[str, ...] = ("s", "^", ">")
    line: str = "--"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", self.kind or self.family)
        object.__setattr__(self, "markers", tuple(self.markers))

    @property
    def published_id(self) -> str:
        return self.published_as or self.name


@dataclass(frozen=True)
class ReportSettings:
    primary: str = "ndcg@10"
    in_domain: str = "msmarco"
    in_domain_metric: str = "mrr@10"
    baseline: str | None = None
    tolerance: float = 0.002
    max_p: float = 0.05
    permutations: int = 10000
    cqadupstack: str = "forums"  # which CQADupStack the BEIR average takes: forums | merged


@dataclass
class Results:
    """Means and per-query values by (dataset, system, metric), read from the metrics files."""

    datasets: list[str]
    beir_names: dict[str, str | None]  # dataset -> the BEIR dataset it is
    means: dict[tuple[str, str, str], float] = field(default_factory=dict)
    per_query: dict[tuple[str, str, str], dict[str, float]] = field(default_factory=dict)
    runs: set[tuple[str, str]] = field(default_factory=set)  # (dataset, system) pairs evaluated
    unscored: dict[str, str] = field(default_factory=dict)  # dataset -> why nothing was scored on it

    def has(self, dataset: str, system: str) -> bool:
        return (dataset, system) in self.runs

    def ran(self, system: str) -> bool:
        return any(run[1] == system for run in self.runs)


def _add_dataset(results: Results, dataset: str) -> None:
    if dataset not in results.datasets:
        results.datasets.append(dataset)
        # Without the config's word, a dataset is the BEIR dataset its name (or its forum's group) says.
        results.beir_names.setdefault(
            dataset, leaderboard_group(dataset) if leaderboard_group(dataset) in BEIR_ZERO_SHOT else None
        )


def results_from_means(means: Iterable[tuple[str, str, str, float]], beir_names: dict[str, str | None]) -> Results:
    """Results of (dataset, system, metric, mean) rows, as the leaderboard reads them."""
    results = Results([], dict(beir_names))
    for dataset, system, metric, value in means:
        _add_dataset(results, dataset)
        results.runs.add((dataset, system))
        results.means[(dataset, system, metric)] = float(value)
    return results


def load_results(records: Iterable[dict[str, Any]], beir_names: dict[str, str | None]) -> Results:
    results = Results([], dict(beir_names))
    for record in records:
        dataset = record["dataset"]
        _add_dataset(results, dataset)
        for system, evaluation in record["systems"].items():
            if evaluation.get("note"):  # no relevant judgement: nothing was scored
                results.unscored[dataset] = evaluation["note"]
                continue
            results.runs.add((dataset, system))
            for metric, value in evaluation["metrics"].items():
                results.means[(dataset, system, metric)] = float(value)
            for metric, values in evaluation.get("per_query", {}).items():
                results.per_query[(dataset, system, metric)] = {query: float(v) for query, v in values.items()}
    return results


@dataclass(frozen=True)
class Row:
    """A table row: one dataset, or CQADupStack's forums together."""

    name: str
    members: tuple[str, ...]
    beir_name: str | None


def table_rows(results: Results) -> list[Row]:
    forums = [
        dataset
        for dataset in results.datasets
        if is_cqadupstack_forum(dataset) and results.beir_names.get(dataset) == CQADUPSTACK
    ]
    rows: list[Row] = []
    for dataset in results.datasets:
        if dataset in forums and len(forums) == len(CQADUPSTACK_FORUMS):
            if not any(row.name == CQADUPSTACK for row in rows):
                rows.append(Row(CQADUPSTACK, tuple(forums), CQADUPSTACK))
            continue
        rows.append(Row(dataset, (dataset,), results.beir_names.get(dataset)))
    return rows


def is_forum_row(row: Row) -> bool:
    return len(row.members) == 1 and is_cqadupstack_forum(row.name)


def row_value(results: Results, row: Row, system: str, metric: str) -> float | None:
    values = [results.means.get((dataset, system, metric)) for dataset in row.members]
    if not values or any(value is None for value in values):
        return None
    return float(sum(values)) / len(values)  # type: ignore[arg-type]


def beir_rows(rows: Sequence[Row], settings: ReportSettings) -> list[Row]:
    """The rows a BEIR average takes: BEIR's zero-shot datasets, each once."""
    chosen: dict[str, Row] = {}
    for row in rows:
        if row.beir_name not in BEIR_ZERO_SHOT or is_forum_row(row):
            continue  # a lone forum is not CQADupStack: only all 12 together, or the merged dataset
        current = chosen.get(row.beir_name)
        if current is None:
            chosen[row.beir_name] = row
        elif row.beir_name == CQADUPSTACK:
            merged = len(row.members) == 1 and row.name != CQADUPSTACK
            if merged == (settings.cqadupstack == "merged"):
                chosen[row.beir_name] = row
    return [row for row in rows if row in chosen.values()]


@dataclass(frozen=True)
class Average:
    value: float | None
    rows: tuple[str, ...]  # the rows averaged (all BEIR rows there are, or those both systems share)


def beir_average(results: Results, rows: Sequence[Row], system: str, metric: str, require_all: bool = True) -> Average:
    values = {row.name: row_value(results, row, system, metric) for row in rows}
    present = {name: value for name, value in values.items() if value is not None}
    if not present or (require_all and len(present) < len(values)):
        return Average(None, tuple(values))
    return Average(sum(present.values()) / len(present), tuple(present))


def common_average(results: Results, rows: Sequence[Row], systems: Sequence[str], metric: str) -> dict[str, Average]:
    """Each system's average over the BEIR rows that all of ``systems`` have."""
    shared = [row for row in rows if all(row_value(results, row, system, metric) is not None for system in systems)]
    return {system: beir_average(results, shared, system, metric) for system in systems}
