"""Gather every metrics file into the leaderboard: long CSV, Markdown table and HTML page (rule leaderboard)."""

import argparse
import dataclasses
import json
from pathlib import Path

from beirflow.report.cost import read_costs
from beirflow.report.leaderboard import (
    build_table,
    entries_of,
    read_metrics,
    to_csv,
    to_html,
    to_markdown,
    unscored_of,
    write_per_query,
)
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage


def build(args: argparse.Namespace) -> None:
    records = read_metrics(args.metrics_files)
    entries = entries_of(records)
    labels = dict(label.split("=", 1) for label in args.label)
    table = build_table(entries, args.primary, labels, json.loads(args.datasets), args.cqadupstack)
    table = dataclasses.replace(table, unscored=unscored_of(records))
    costs = read_costs(args.cost) if args.cost else None
    for path, text in (
        (args.csv, to_csv(entries)),
        (args.markdown, to_markdown(table, costs)),
        (args.html, to_html(table, costs=costs)),
    ):
        with atomic_write(path) as handle:
            handle.write(text)
    if args.per_query:
        write_per_query(records, args.per_query)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("metrics_files", nargs="+", type=Path)
    parser.add_argument("--primary", default="ndcg@10", help="the metric of the Markdown and HTML tables")
    parser.add_argument("--label", action="append", default=[], help="system=heading, e.g. 'monot5-base=bm25-flat » monot5-base'")
    parser.add_argument(
        "--datasets", default="{}", help="JSON: dataset -> the BEIR dataset it is (the report's), for the BEIR average"
    )
    parser.add_argument(
        "--cqadupstack",
        default="forums",
        choices=("forums", "merged"),
        help="which CQADupStack the BEIR average takes where both are configured",
    )
    parser.add_argument("--cost", type=Path, help="cost.csv: GPU-hours per dataset and system, shown under the table")
    parser.add_argument("--csv", required=True, type=Path)
    parser.add_argument("--markdown", required=True, type=Path)
    parser.add_argument("--html", required=True, type=Path)
    parser.add_argument("--per-query", type=Path, help="per_query.parquet: every per-query value of the grid")
    args = parser.parse_args()
    run_stage("leaderboard", "all datasets and systems", lambda: build(args))


if __name__ == "__main__":
    main()
