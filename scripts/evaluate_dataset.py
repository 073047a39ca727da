"""Evaluate every run of one dataset against its qrels with ranx, trec_eval -c conventions (rule evaluate).

One job per dataset: a process start and ranx's numba load cost seconds, the evaluation of a run
milliseconds, so a dataset's systems share one process.
"""

import argparse
import json
import logging
from pathlib import Path

from beirflow.atomic import atomic_write
from beirflow.beir import read_qrels_trec
from beirflow.cli import run_stage
from beirflow.digest import file_digest
from beirflow.evaluate import evaluate_run
from beirflow.run_table import read_run_table


def evaluate(args: argparse.Namespace) -> None:
    if len(args.systems) != len(args.runs):
        raise SystemExit(f"{len(args.systems)} systems but {len(args.runs)} runs")
    qrels = read_qrels_trec(args.qrels)
    systems = {}
    for system, run in zip(args.systems, args.runs, strict=False):
        evaluation = evaluate_run(qrels, read_run_table(run), args.metrics)
        systems[system] = {"run": str(run), "run_sha256": file_digest(run), **evaluation.to_dict()}
        shown = ", ".join(f"{metric} {value:.4f}" for metric, value in evaluation.metrics.items())
        logging.info(
            "%s %s: %s over %d judged queries (%d without hits)",
            args.dataset,
            system,
            shown,
            evaluation.judged_queries,
            evaluation.queries_without_hits,
        )
    with atomic_write(args.output) as handle:
        json.dump({"dataset": args.dataset, "metrics": args.metrics, "systems": systems}, handle, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--systems", required=True, nargs="+", help="system names, in the order of --runs")
    parser.add_argument("--runs", required=True, nargs="+", type=Path, help="their TREC runs")
    parser.add_argument("--qrels", required=True, type=Path, help="TREC qrels written by prepare_dataset")
    parser.add_argument("--metrics", required=True, nargs="+", help="ranx metric names, e.g. ndcg@10 recall@100")
    parser.add_argument("--output", required=True, type=Path, help="results/{dataset}/metrics.json")
    parser.add_argument("--dataset", required=True)
    args = parser.parse_args()
    run_stage("evaluate", f"dataset={args.dataset}", lambda: evaluate(args))


if __name__ == "__main__":
    main()
