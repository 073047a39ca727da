"""Write the report: findings, tables, published against reproduced, significance, plots (rule report)."""

import argparse
import json
from pathlib import Path
from typing import Any

from beirflow.report.assemble import build_report
from beirflow.report.figures import all_plots
from beirflow.report.pages import (
    PUBLISHED_HEADER,
    SIGNIFICANCE_HEADER,
    published_rows,
    significance_rows,
    to_csv,
    to_html,
    to_markdown,
)
from beirflow.report.published import read_published
from beirflow.report.results import ReportSettings, SystemInfo, load_results
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage


def measured_parameters(paths: list[Path]) -> dict[str, float]:
    """Parameter counts the GPU jobs measured from the loaded weights, by system."""
    counts: dict[str, float] = {}
    for path in paths:
        record = json.loads(path.read_text(encoding="utf-8"))
        value = record.get("model_parameters")
        if isinstance(value, list):  # shards that differ: a retried shard on another revision
            value = max(value)
        if value:
            counts[record["system"]] = float(value)
    return counts


def system_infos(entries: list[dict[str, Any]], measured: dict[str, float]) -> list[SystemInfo]:
    systems = []
    for entry in entries:
        parameters = entry.get("parameters") or measured.get(entry["name"])
        systems.append(SystemInfo(**{**entry, "parameters": parameters}))
    return systems


def build(args: argparse.Namespace) -> None:
    records = [json.loads(path.read_text(encoding="utf-8")) for path in args.metrics_files]
    results = load_results(records, json.loads(args.datasets))
    systems = system_infos(json.loads(args.systems), measured_parameters(args.provenance))
    report = build_report(results, systems, read_published(args.published), ReportSettings(**json.loads(args.settings)))
    plots = all_plots(report)
    args.plots_dir.mkdir(parents=True, exist_ok=True)
    plot_files = {}
    for name, data in plots.items():
        with atomic_write(args.plots_dir / f"{name}.png", mode="wb") as handle:
            handle.write(data)
        plot_files[name] = f"{args.plots_dir.name}/{name}.png"
    summary = {
        "findings": report.findings,
        "beir_average_over": [row.name for row in report.beir],
        "published": [
            {
                "dataset": c.published.dataset,
                "system": c.system,
                "metric": c.published.metric,
                "published": c.published.value,
                "reproduced": c.reproduced,
                "status": c.status,
                "note": c.note,
            }
            for c in report.checks
        ],
        "systems": [system.__dict__ for system in report.systems],
    }
    outputs = {
        args.markdown: to_markdown(report, plot_files),
        args.html: to_html(report, plots),
        args.published_csv: to_csv(PUBLISHED_HEADER, published_rows(report.checks)),
        args.significance_csv: to_csv(SIGNIFICANCE_HEADER, significance_rows(report.comparisons, report.settings.max_p)),
        args.json: json.dumps(summary, indent=1, sort_keys=True) + "\n",
    }
    for path, text in outputs.items():
        with atomic_write(path) as handle:
            handle.write(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("metrics_files", nargs="+", type=Path, help="results/{dataset}/metrics.json")
    parser.add_argument(
        "--systems",
        required=True,
        help="JSON list: name, family, label, series, parameters, published_as, first_stage, kind, role, markers, line",
    )
    parser.add_argument("--datasets", required=True, help="JSON object: dataset -> the BEIR dataset it is (or null)")
    parser.add_argument("--settings", required=True, help="JSON object: the report settings (primary, baseline, tolerance, ...)")
    parser.add_argument("--published", nargs="*", type=Path, default=[], help="CSV files of published figures")
    parser.add_argument(
        "--provenance", nargs="*", type=Path, default=[], help="provenance of model runs (measured parameter counts)"
    )
    parser.add_argument("--html", required=True, type=Path)
    parser.add_argument("--markdown", required=True, type=Path)
    parser.add_argument("--published-csv", required=True, type=Path)
    parser.add_argument("--significance-csv", required=True, type=Path)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--plots-dir", required=True, type=Path)
    args = parser.parse_args()
    run_stage("report", "all datasets and systems", lambda: build(args))


if __name__ == "__main__":
    main()
