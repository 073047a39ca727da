"""The report: the paper's questions answered from whatever runs exist.

* Rows: one per dataset, CQADupStack's forums folded into one row once all 12 are there. The
  BEIR average is taken over BEIR's 18 zero-shot datasets only (never MS MARCO, never a dataset
  that is not BEIR's), each once; the report names the ones it averages.
* Published against reproduced: every published figure (``published/*.csv``) of a configured
  system, next to the figure of the run made the same way, flagged beyond the tolerance.
* Significance: per dataset, each system against the baseline (BM25) and against the next
  smaller model of its series, with ranx's paired Student's t-test and Fisher's randomisation
  test on the per-query primary metric; p-values Holm-corrected over a dataset's comparisons.
* Findings: sentences built from the numbers, or what is missing to build them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beirflow.evaluate import display_name
from beirflow.registry import BEIR_ZERO_SHOT, CQADUPSTACK, CQADUPSTACK_FORUMS, is_cqadupstack_forum, leaderboard_group

BEIR_AVERAGE = "beir-average"


@dataclass(frozen=True)
class SystemInfo:
    name: str
    family: str  # bm25 | rerank | dense | fusion
    label: str
    series: str | None = None
    parameters: float | None = None
    published_as: str | None = None
    first_stage: str | None = None

    @property
    def kind(self) -> str:
        return {"rerank": "reranker", "dense": "dense", "bm25": "BM25", "fusion": "fusion"}.get(self.family, self.family)

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
            results.runs.add((dataset, system))
            for metric, value in evaluation["metrics"].items():
                results.means[(dataset, system, metric)] = float(value)
            for metric, values in evaluation.get("per_query", {}).items():
                results.per_query[(dataset, system, metric)] = {query: float(v) for query, v in values.items()}
    return results


# ---- rows and averages --------------------------------------------------------------------


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


# ---- significance -------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    dataset: str
    system: str
    against: str
    relation: str  # 'baseline' or 'smaller'
    delta: float
    p_student: float
    p_fisher: float
    holm_student: float = 1.0
    holm_fisher: float = 1.0

    def significant(self, max_p: float) -> bool:
        return self.holm_fisher <= max_p and self.holm_student <= max_p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def paired_tests(control: np.ndarray, treatment: np.ndarray, permutations: int, seed: int = 42) -> tuple[float, float]:
    """Student's paired t-test (ranx's function) and Fisher's randomisation test.

    Fisher's test is ranx's algorithm (each permutation swaps a query's two values with
    probability 1/2; p is the share of permutations whose mean difference is at least the
    observed one) with its random stream made reproducible: ranx draws in numba-parallel
    threads, whose streams the seed does not fix, so its p-value moves from run to run and the
    report would not rebuild to the same bytes.
    """
    from ranx.statistical_tests import paired_student_t_test

    if np.array_equal(control, treatment):
        return 1.0, 1.0
    p_student, _ = paired_student_t_test(control, treatment)
    p_student = 1.0 if math.isnan(float(p_student)) else float(p_student)
    return p_student, fisher_randomization(treatment - control, permutations, seed)


def fisher_randomization(differences: np.ndarray, permutations: int, seed: int = 42, chunk: int = 1000) -> float:
    """Share of sign-flip permutations of the per-query differences at least as extreme as observed."""
    rng = np.random.default_rng(seed)
    observed = abs(differences.mean())
    extreme = 0
    for start in range(0, permutations, chunk):
        signs = rng.integers(0, 2, size=(min(chunk, permutations - start), differences.size), dtype=np.int8) * 2 - 1
        extreme += int(np.count_nonzero(np.abs(signs @ differences / differences.size) >= observed - 1e-12))
    return extreme / permutations


def next_smaller(systems: Sequence[SystemInfo], system: SystemInfo) -> SystemInfo | None:
    if system.series is None or system.parameters is None:
        return None
    smaller = [
        other
        for other in systems
        if other.series == system.series and other.parameters is not None and other.parameters < system.parameters
    ]
    return max(smaller, key=lambda other: other.parameters or 0) if smaller else None


def compare_systems(results: Results, systems: Sequence[SystemInfo], settings: ReportSettings) -> list[Comparison]:
    metric = settings.primary
    comparisons: list[Comparison] = []
    for dataset in results.datasets:
        pairs: list[tuple[str, str, str]] = []
        for system in systems:
            if not results.has(dataset, system.name):
                continue
            if settings.baseline and system.name != settings.baseline and results.has(dataset, settings.baseline):
                pairs.append((system.name, settings.baseline, "baseline"))
            smaller = next_smaller(systems, system)
            if smaller is not None and results.has(dataset, smaller.name):
                pairs.append((system.name, smaller.name, "smaller"))
        found: list[Comparison] = []
        for name, other, relation in pairs:
            treatment_scores = results.per_query.get((dataset, name, metric))
            control_scores = results.per_query.get((dataset, other, metric))
            if not treatment_scores or not control_scores:
                continue
            queries = sorted(set(treatment_scores) & set(control_scores))
            treatment = np.array([treatment_scores[query] for query in queries], dtype=np.float64)
            control = np.array([control_scores[query] for query in queries], dtype=np.float64)
            p_student, p_fisher = paired_tests(control, treatment, settings.permutations)
            found.append(
                Comparison(dataset, name, other, relation, float(treatment.mean() - control.mean()), p_student, p_fisher)
            )
        holm_student = holm([comparison.p_student for comparison in found])
        holm_fisher = holm([comparison.p_fisher for comparison in found])
        comparisons += [
            Comparison(**{**c.__dict__, "holm_student": hs, "holm_fisher": hf})
            for c, hs, hf in zip(found, holm_student, holm_fisher, strict=False)
        ]
    return comparisons


# ---- published against reproduced ---------------------------------------------------------


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
    from beirflow.errors import DataError

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


# ---- findings -----------------------------------------------------------------------------


def _size(parameters: float | None) -> str:
    if parameters is None:
        return "size unknown"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if parameters >= scale:
            return f"{parameters / scale:.3g}{unit}"
    return f"{parameters:.0f}"


def _change(before: float, after: float) -> str:
    relative = f", {100 * (after - before) / before:+.1f}%" if before else ""
    return f"{after - before:+.3f} ({before:.3f} → {after:.3f}{relative})"


def _series(systems: Sequence[SystemInfo]) -> dict[str, list[SystemInfo]]:
    grouped: dict[str, list[SystemInfo]] = {}
    for system in systems:
        if system.series and system.parameters:
            grouped.setdefault(system.series, []).append(system)
    return {name: sorted(members, key=lambda s: s.parameters or 0) for name, members in grouped.items()}


def finding_size(results: Results, systems: Sequence[SystemInfo], beir: Sequence[Row], settings: ReportSettings) -> list[str]:
    """Per series: the gain from its smallest to its largest model, in-domain and zero-shot."""
    metric, in_metric = display_name(settings.primary), display_name(settings.in_domain_metric)
    sentences = []
    for series, members in _series(systems).items():
        ran = [system for system in members if results.ran(system.name)]
        if len(ran) < 2:
            continue
        small, large = ran[0], ran[-1]
        averages = common_average(results, beir, [small.name, large.name], settings.primary)
        small_out, large_out = averages[small.name].value, averages[large.name].value
        small_in = results.means.get((settings.in_domain, small.name, settings.in_domain_metric))
        large_in = results.means.get((settings.in_domain, large.name, settings.in_domain_metric))
        parts = [f"{series}, from {small.label} ({_size(small.parameters)}) to {large.label} ({_size(large.parameters)}):"]
        if small_in is not None and large_in is not None:
            parts.append(f"in-domain {in_metric} on {settings.in_domain} {_change(small_in, large_in)};")
        else:
            parts.append(f"in-domain: no {settings.in_domain} run of both;")
        if small_out is not None and large_out is not None:
            parts.append(
                f"zero-shot BEIR average {metric} over {len(averages[small.name].rows)} dataset(s) {_change(small_out, large_out)}."
            )
        else:
            parts.append("zero-shot: no BEIR dataset run by both.")
        if small_in and large_in is not None and small_out and large_out is not None:
            gain_in, gain_out = (large_in - small_in) / small_in, (large_out - small_out) / small_out
            parts.append(
                f"Relative gain zero-shot {100 * gain_out:+.1f}% against {100 * gain_in:+.1f}% in-domain: {'larger zero-shot, as the paper found' if gain_out > gain_in else 'not larger zero-shot, unlike the paper'}."
            )
        sentences.append(" ".join(parts))
    if not sentences:
        sentences.append("Size against gain: needs two sizes of one series (report.series and a parameter count) with results; "
                         f"have {', '.join(f'{name}: {len(m)}' for name, m in _series(systems).items()) or 'no series'}. config/paper.yaml runs monoT5 60M-3B, GTR 110M-4.8B and SGPT 125M-5.8B.")  # fmt: skip
    return sentences


def finding_rerankers_against_dense(
    results: Results, systems: Sequence[SystemInfo], beir: Sequence[Row], settings: ReportSettings
) -> list[str]:
    """Each reranker against the dense model nearest its size (at most 3x apart)."""
    metric = display_name(settings.primary)
    rerankers = [s for s in systems if s.family == "rerank" and s.parameters]
    dense = [s for s in systems if s.family == "dense" and s.parameters]
    sentences, ahead, pairs = [], 0, 0
    for reranker in rerankers:
        near = [d for d in dense if abs(math.log10(d.parameters / reranker.parameters)) <= math.log10(3)]  # type: ignore[operator]
        if not near:
            continue
        rival = min(near, key=lambda d: abs(math.log10(d.parameters / reranker.parameters)))  # type: ignore[operator]
        averages = common_average(results, beir, [reranker.name, rival.name], settings.primary)
        ours, theirs = averages[reranker.name].value, averages[rival.name].value
        if ours is None or theirs is None:
            continue
        pairs += 1
        ahead += ours > theirs
        sentences.append(
            f"{reranker.label} (reranker, {_size(reranker.parameters)}) {ours:.3f} against {rival.label} (dense, {_size(rival.parameters)}) {theirs:.3f}: {ours - theirs:+.3f} in BEIR average {metric} over {len(averages[reranker.name].rows)} dataset(s)."
        )
    if pairs:
        sentences.append(f"Rerankers ahead of the dense model of similar size in {ahead} of {pairs} pairing(s).")
    else:
        sentences.append("Rerankers against dense models of similar size: needs a reranker and a dense model within 3x of its parameter count, both run on a BEIR dataset; "
                         f"have {len(rerankers)} reranker(s) and {len(dense)} dense model(s) with a parameter count.")  # fmt: skip
    return sentences


def finding_largest_reranker(
    results: Results, systems: Sequence[SystemInfo], beir: Sequence[Row], settings: ReportSettings
) -> list[str]:
    """On how many BEIR datasets the largest reranker is best of all systems run there."""
    rerankers = [
        s
        for s in systems
        if s.family == "rerank"
        and s.parameters
        and any(row_value(results, row, s.name, settings.primary) is not None for row in beir)
    ]
    if not rerankers:
        return ["Largest reranker: no reranker with a parameter count has run on a BEIR dataset."]
    largest = max(rerankers, key=lambda s: s.parameters or 0)
    wins, ran, others = [], [], [s for s in systems if s.name != largest.name]
    for row in beir:
        value = row_value(results, row, largest.name, settings.primary)
        if value is None:
            continue
        ran.append(row.name)
        rivals = [v for v in (row_value(results, row, other.name, settings.primary) for other in others) if v is not None]
        if all(round(value, 4) >= round(rival, 4) for rival in rivals):
            wins.append(row.name)
    if len(systems) < 2:
        return [f"Largest reranker: {largest.label} is the only system; nothing to be best against."]
    return [
        f"{largest.label}, the largest reranker ({_size(largest.parameters)}), is best of {len(systems)} systems on {len(wins)} of {len(ran)} BEIR dataset(s) run ({', '.join(wins) or 'none'}); the paper: monoT5-3B on 12 of 18."
    ]


@dataclass
class Report:
    settings: ReportSettings
    systems: list[SystemInfo]
    results: Results
    rows: list[Row]
    beir: list[Row]
    comparisons: list[Comparison]
    checks: list[Check]
    unmatched_published: int
    findings: dict[str, list[str]]


def build_report(
    results: Results, systems: Sequence[SystemInfo], published: Sequence[Published], settings: ReportSettings
) -> Report:
    present = [system for system in systems if results.ran(system.name)]
    rows = table_rows(results)
    beir = beir_rows(rows, settings)
    checks, unmatched = check_published(published, results, systems, rows, beir, settings.tolerance)
    findings = {
        "size": finding_size(results, present, beir, settings),
        "rerankers_against_dense": finding_rerankers_against_dense(results, present, beir, settings),
        "largest_reranker": finding_largest_reranker(results, present, beir, settings),
    }
    return Report(
        settings, present, results, rows, beir, compare_systems(results, present, settings), checks, unmatched, findings
    )
