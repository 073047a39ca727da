"""Evaluate a TREC run against the split's qrels with ranx, trec_eval -c conventions (rule evaluate)."""

import argparse
import json
import logging
from pathlib import Path

from beirflow.atomic import atomic_write
from beirflow.beir import read_qrels_trec
from beirflow.cli import run_stage
from beirflow.digest import file_digest
from beirflow.evaluate import evaluate_run
from beirflow.trec import read_run


def evaluate(args: argparse.Namespace) -> None:
    evaluation = evaluate_run(read_qrels_trec(args.qrels), read_run(args.run), args.metrics)
    record = {"dataset": args.dataset, "system": args.system, "run": str(args.run), "run_sha256": file_digest(args.run), **evaluation.to_dict()}
    with atomic_write(args.output) as handle:
        json.dump(record, handle, indent=1)
    shown = ", ".join(f"{metric} {value:.4f}" for metric, value in evaluation.metrics.items())
    logging.info("%s %s: %s over %d judged queries (%d without hits)", args.dataset, args.system, shown, evaluation.judged_queries, evaluation.queries_without_hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--qrels", required=True, type=Path, help="TREC qrels written by prepare_dataset")
    parser.add_argument("--metrics", required=True, nargs="+", help="ranx metric names, e.g. ndcg@10 recall@100")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--system", required=True)
    args = parser.parse_args()
    run_stage("evaluate", f"dataset={args.dataset} system={args.system}", lambda: evaluate(args))


if __name__ == "__main__":
    main()
