"""The report: the paper's questions answered from whatever runs exist, put together from the modules
that each answer one (:mod:`beirflow.report.results` the rows and the BEIR average, :mod:`beirflow.report.published`
published against reproduced, :mod:`beirflow.report.significance` the paired tests, :mod:`beirflow.report.findings`
the sentences); :mod:`beirflow.report.pages` and :mod:`beirflow.report.figures` render it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from beirflow.report.findings import finding_largest_reranker, finding_rerankers_against_dense, finding_size
from beirflow.report.published import Check, Published, check_published
from beirflow.report.results import ReportSettings, Results, Row, SystemInfo, beir_rows, table_rows
from beirflow.report.significance import Comparison, compare_systems


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
