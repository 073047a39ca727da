"""Evaluate every run of one dataset against its qrels with ranx, trec_eval -c conventions (rule evaluate).

One job per dataset: a process start and ranx's numba load cost seconds, the evaluation of a run
milliseconds, so a dataset's systems share one process.
"""

import argparse
import json
import logging
from pathlib import Path

from beirflow.data.beir import read_qrels_trec
from beirflow.evaluate.metrics import evaluate_run
from beirflow.runs.table import RunTable, read_run_table
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.digest import file_digest
from beirflow.workflow.errors import DataError, rebuild_hint
from beirflow.workflow.integrity import Writer, verify, written_by_hand


def checked_run(path: Path, qrels: dict[str, dict[str, int]]) -> RunTable:
    """The run as its job wrote it (its record), holding hits, and only for queries the dataset asked."""
    verify(path)
    table = read_run_table(path)
    if len(table.scores) == 0:
        raise DataError(path, f"the run holds no hit for any of the dataset's {len(qrels)} queries; {rebuild_hint(path)}")
    unasked = [query_id for query_id in table.query_ids if query_id not in qrels]
    if unasked:
        raise DataError(
            path, f"query '{unasked[0]}' ({len(unasked)} in all) is not one of the dataset's judged queries; {rebuild_hint(path)}"
        )
    return table


def evaluate(args: argparse.Namespace) -> None:
    if len(args.systems) != len(args.runs):
        raise SystemExit(f"{len(args.systems)} systems but {len(args.runs)} runs")
    qrels_counts = verify(args.qrels)
    qrels = read_qrels_trec(args.qrels)
    relevant = sum(1 for judged in qrels.values() for relevance in judged.values() if relevance > 0)
    if qrels_counts.get("relevant_judgements", relevant) != relevant:
        raise DataError(args.qrels, f"holds {relevant} relevant judgements, its record {qrels_counts['relevant_judgements']}")
    if relevant == 0:
        logging.warning("%s: no judgement in %s is relevant: every metric would be 0, none is reported", args.dataset, args.qrels)
    systems = {}
    for system, run in zip(args.systems, args.runs, strict=False):
        evaluation = evaluate_run(qrels, checked_run(run, qrels), args.metrics)
        systems[system] = {"run": str(run), "run_sha256": file_digest(run), **evaluation.to_dict()}
        if written_by_hand(run):
            logging.warning("%s %s: the run was edited by hand and adopted (scripts/adopt_file.py)", args.dataset, system)
            systems[system]["edited_by_hand"] = True
        if relevant == 0:
            systems[system]["metrics"] = dict.fromkeys(evaluation.metrics)
            systems[system]["note"] = "no relevant judgement in the qrels"
            continue
        shown = ", ".join(f"{metric} {value:.4f}" for metric, value in evaluation.metrics.items())
        logging.info(
            "%s %s: %s over %d judged queries (%d without hits)",
            args.dataset,
            system,
            shown,
            evaluation.judged_queries,
            evaluation.queries_without_hits,
        )
    with atomic_write(args.output, writer=Writer("evaluate", args.dataset)) as handle:
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
