"""Gather every evaluation into one leaderboard: a long CSV, a Markdown table and an HTML page.

CQADupStack's 12 forums are averaged into one ``cqadupstack`` row, as BEIR reports it. The BEIR
average is the report's, over the same rows: BEIR's 18 zero-shot datasets, each once (never MS
MARCO, in-domain for every model trained on it, the paper's point; never a dataset that is not
BEIR's), and the table names the rows it averages.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beirflow.data.registry import BEIR_ZERO_SHOT, CQADUPSTACK, CQADUPSTACK_FORUMS, is_cqadupstack_forum, leaderboard_group
from beirflow.evaluate.metrics import display_name
from beirflow.report.cells import score_cells
from beirflow.report.cost import JobCost, gpu_hours
from beirflow.report.html_page import page
from beirflow.report.html_page import table as html_table
from beirflow.report.results import ReportSettings, beir_average, beir_rows, results_from_means, table_rows

IN_DOMAIN = {"msmarco"}
CSV_COLUMNS = ("dataset", "system", "metric", "value", "queries", "run_sha256")
AVERAGE_ROW = "BEIR average"


@dataclass(frozen=True)
class Entry:
    dataset: str
    system: str
    metric: str  # ranx name, e.g. ndcg@10
    value: float
    queries: int
    run_sha256: str


def read_metrics(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The per-dataset metrics files that ``evaluate_dataset.py`` writes, each read once."""
    return [json.loads(Path(path).read_text(encoding="utf-8")) for path in paths]


def load_entries(paths: Iterable[Path]) -> list[Entry]:
    return entries_of(read_metrics(paths))


def entries_of(records: Iterable[dict[str, Any]]) -> list[Entry]:
    """The leaderboard's entries of metrics files' records: one per dataset, system and scored metric."""
    entries = []
    for record in records:
        for system, evaluation in record["systems"].items():
            for metric, value in evaluation["metrics"].items():
                if value is None or not evaluation["judged_queries"]:
                    continue  # nothing to score against (no relevant judgement): no cell, no bold, no average
                entries.append(
                    Entry(
                        record["dataset"],
                        system,
                        metric,
                        float(value),
                        int(evaluation["judged_queries"]),
                        evaluation["run_sha256"],
                    )
                )
    return entries


def unscored_of(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Datasets whose evaluation scored nothing, with the reason its metrics file gives."""
    unscored = {}
    for record in records:
        notes = {evaluation.get("note") for evaluation in record["systems"].values()} - {None}
        if notes:
            unscored[record["dataset"]] = "; ".join(sorted(notes))
    return unscored


PER_QUERY_COLUMNS = ("dataset", "system", "query", "metric", "value")


def write_per_query(records: Iterable[dict[str, Any]], output: Path) -> int:
    """Every per-query value of the metrics files as one Parquet table (``PER_QUERY_COLUMNS``), in the
    files' order; returns its rows. What ir_measures' ``iter_calc`` and ranx's reports give per query."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from beirflow.workflow.atomic import atomic_path

    columns: dict[str, list] = {name: [] for name in PER_QUERY_COLUMNS}
    for record in records:
        for system, evaluation in record["systems"].items():
            for metric, values in evaluation.get("per_query", {}).items():
                for query, value in values.items():
                    for name, item in zip(
                        PER_QUERY_COLUMNS, (record["dataset"], system, query, metric, float(value)), strict=True
                    ):
                        columns[name].append(item)
    schema = pa.schema([*((name, pa.string()) for name in PER_QUERY_COLUMNS[:-1]), ("value", pa.float64())])
    with atomic_path(output) as temporary:
        pq.write_table(pa.table(columns, schema=schema), temporary)
    return len(columns["value"])


def with_group_averages(entries: Sequence[Entry]) -> list[Entry]:
    """Add one ``cqadupstack`` entry per system and metric where all 12 forums are present."""
    forums: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        if is_cqadupstack_forum(entry.dataset):
            forums.setdefault((entry.system, entry.metric), []).append(entry)
    averaged = list(entries)
    for (system, metric), members in forums.items():
        if len(members) == len(CQADUPSTACK_FORUMS):
            value = sum(member.value for member in members) / len(members)
            averaged.append(Entry(CQADUPSTACK, system, metric, value, sum(member.queries for member in members), ""))
    return averaged


def leaderboard_rows(entries: Sequence[Entry]) -> list[str]:
    """Datasets as the table shows them: forums folded into their group once it is complete."""
    present = {entry.dataset for entry in entries}
    rows: list[str] = []
    for entry in entries:
        group = leaderboard_group(entry.dataset)
        row = group if group in present else entry.dataset
        if row not in rows:
            rows.append(row)
    return rows


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class Table:
    """Datasets x systems for one metric, with the BEIR average per system."""

    metric: str
    datasets: list[str]
    systems: list[str]
    values: dict[tuple[str, str], float]
    averages: dict[str, float | None]
    labels: dict[str, str] = field(default_factory=dict)  # system -> how a column is headed
    averaged: tuple[str, ...] = ()  # the rows the BEIR average takes
    unscored: dict[str, str] = field(default_factory=dict)  # dataset -> why nothing on it was scored

    @property
    def unscored_note(self) -> str:
        """Datasets left out of the table, and why (qrels with no relevant judgement)."""
        if not self.unscored:
            return ""
        return "Not scored: " + "; ".join(f"{dataset} ({why})" for dataset, why in self.unscored.items()) + "."

    @property
    def average_label(self) -> str:
        return f"{AVERAGE_ROW} ({len(self.averaged)} of {len(BEIR_ZERO_SHOT)}: {', '.join(self.averaged) or 'none run'})"

    def label(self, system: str) -> str:
        return self.labels.get(system, system)

    def row(self, dataset: str) -> list[float | None]:
        return [self.values.get((dataset, system)) for system in self.systems]

    @property
    def average_row(self) -> list[float | None]:
        return [self.averages[system] for system in self.systems]


def build_table(
    entries: Sequence[Entry],
    metric: str,
    labels: dict[str, str] | None = None,
    beir_names: dict[str, str | None] | None = None,
    cqadupstack: str = "forums",
) -> Table:
    """The table; its BEIR average is the report's (:func:`beirflow.report.results.beir_average`), over the
    same rows: BEIR's zero-shot datasets, each once (``beir_names``: dataset -> the BEIR dataset it
    is, from the config; ``cqadupstack``: which form the average takes where both are there)."""
    chosen = [entry for entry in with_group_averages(entries) if entry.metric == metric]
    datasets = leaderboard_rows(chosen)
    systems = _ordered(entry.system for entry in chosen)
    values = {(entry.dataset, entry.system): entry.value for entry in chosen if entry.dataset in datasets}
    results = results_from_means(
        ((entry.dataset, entry.system, entry.metric, entry.value) for entry in entries if entry.metric == metric),
        beir_names or {},
    )
    rows = beir_rows(table_rows(results), ReportSettings(cqadupstack=cqadupstack))
    averages = {system: beir_average(results, rows, system, metric).value for system in systems}
    return Table(metric, datasets, systems, values, averages, dict(labels or {}), tuple(row.name for row in rows))


def to_csv(entries: Sequence[Entry]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in with_group_averages(entries):
        writer.writerow(
            [entry.dataset, entry.system, display_name(entry.metric), f"{entry.value:.6f}", entry.queries, entry.run_sha256]
        )
    return buffer.getvalue()


def cost_section(costs: Sequence[JobCost], table: Table) -> tuple[list[str], list[list[str]], str]:
    """GPU-hours per dataset (rows) and GPU system (columns), and the total line; where no job had a GPU,
    no table, only the line that says so."""
    if not any(cost.gpus for cost in costs):
        return [], [], "No GPU jobs ran: every model job ran on CPUs (their times are in cost.csv)."
    per_system, total = gpu_hours(costs)
    systems = [system for system in table.systems if any(key[1] == system for key in per_system)]
    datasets = _ordered(cost.dataset for cost in costs)
    rows = [
        [dataset, *(f"{per_system[(dataset, system)]:.3f}" if (dataset, system) in per_system else "–" for system in systems)]
        for dataset in datasets
    ]
    sources = sorted({cost.source for cost in costs})
    note = f"GPU-hours (allocated GPUs × elapsed, from {' and '.join(sources)}); all GPU jobs together: {total:.3f} GPU-hours."
    return ["dataset", *(table.label(system) for system in systems)], rows, note


def to_markdown(table: Table, costs: Sequence[JobCost] | None = None) -> str:
    header = ["dataset", *(table.label(system) for system in table.systems)]
    lines = [
        f"{display_name(table.metric)} per dataset; best per dataset in bold. {AVERAGE_ROW}: BEIR's zero-shot datasets, each once, as in the report.",
        "",
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * len(table.systems)) + "|")
    for dataset in table.datasets:
        lines.append("| " + " | ".join([dataset, *score_cells(table.row(dataset), ("**", "**"))]) + " |")
    lines.append("| " + " | ".join([table.average_label, *score_cells(table.average_row, ("**", "**"))]) + " |")
    if table.unscored:
        lines += ["", table.unscored_note]
    if costs is not None:
        header, rows, note = cost_section(costs, table)
        lines += ["", note]
        if rows:
            lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


_PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")


def _svg_chart(table: Table) -> str:
    """A grouped bar chart (one group per dataset, one bar per system), inline SVG."""
    rows = [*table.datasets, AVERAGE_ROW]
    bar, gap, height, left, top = 14, 18, 240, 48, 16
    group_width = bar * len(table.systems) + gap
    width = left + group_width * len(rows) + 16
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{html.escape(display_name(table.metric))} chart" width="{width}" height="{height + 110}">'
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + height * (1 - tick)
        parts.append(
            f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:.2f}</text>'
        )
    for group_index, dataset in enumerate(rows):
        x0 = left + group_index * group_width + gap / 2
        for system_index, system in enumerate(table.systems):
            value = table.averages.get(system) if dataset == AVERAGE_ROW else table.values.get((dataset, system))
            if value is None:
                continue
            bar_height = max(0.0, min(1.0, value)) * height
            x = x0 + system_index * bar
            colour = _PALETTE[system_index % len(_PALETTE)]
            parts.append(
                f'<rect x="{x:.1f}" y="{top + height - bar_height:.1f}" width="{bar - 2}" height="{bar_height:.1f}" fill="{colour}"><title>{html.escape(dataset)} · {html.escape(system)}: {value:.4f}</title></rect>'
            )
        label_x = x0 + (group_width - gap) / 2
        parts.append(
            f'<text x="{label_x:.1f}" y="{top + height + 12}" font-size="10" text-anchor="end" transform="rotate(-40 {label_x:.1f} {top + height + 12})">{html.escape(dataset)}</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{_PALETTE[i % len(_PALETTE)]}"></i>{html.escape(table.label(system))}</span>'
        for i, system in enumerate(table.systems)
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _cost_html(costs: Sequence[JobCost] | None, table: Table) -> str:
    if costs is None:
        return ""
    header, rows, note = cost_section(costs, table)
    if not rows:
        return f'<h2>Cost</h2><p id="gpu-hours">{html.escape(note)}</p>'
    return f"<h2>Cost</h2><p>{html.escape(note)}</p>\n{html_table('gpu-hours', header, rows)}"


def to_html(table: Table, title: str = "beirflow leaderboard", costs: Sequence[JobCost] | None = None) -> str:
    header = ["dataset", *(table.label(system) for system in table.systems)]
    rows = [[dataset, *score_cells(table.row(dataset), ("**", "**"))] for dataset in table.datasets]
    rows.append([table.average_label, *score_cells(table.average_row, ("**", "**"))])
    metric = html.escape(display_name(table.metric))
    unscored = f'<p id="unscored">{html.escape(table.unscored_note)}</p>' if table.unscored else ""
    body = f"""<p>{metric} per dataset; best per dataset in bold. {AVERAGE_ROW}: BEIR's zero-shot datasets, each once, as in the report.</p>
{html_table("leaderboard", header, rows, [False] * (len(rows) - 1) + [True])}
{unscored}
{_svg_chart(table)}
{_cost_html(costs, table)}"""
    return page(title, body)
