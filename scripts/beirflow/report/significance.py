"""Significance: per dataset, each system against the baseline (BM25) and against the next smaller
model of its series, with ranx's paired Student's t-test and Fisher's randomisation test on the
per-query primary metric; p-values Holm-corrected over a dataset's comparisons."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from beirflow.report.results import ReportSettings, Results, SystemInfo


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
