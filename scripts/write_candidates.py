"""Split a first stage's top-depth hits by query shard, for the rerank jobs (rule rerank_candidates)."""

import argparse
import logging
from pathlib import Path

from beirflow.rerank.candidates import write_candidates
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import Writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="the first stage's TREC run")
    parser.add_argument("--query-shards", required=True, type=Path, help="results/{dataset}/shards/queries")
    parser.add_argument("--depth", required=True, type=int)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--dataset", default="?")
    parser.add_argument("--first-stage", help="the system whose run is split, for the candidates' record")
    args = parser.parse_args()

    def write() -> None:
        writer = Writer("rerank_candidates", args.dataset, args.first_stage, f"top{args.depth}")
        counts = write_candidates(args.run, args.query_shards, args.output_dir, args.depth, writer)
        logging.info(
            "%s: %d pairs for %d queries in %d shards (%d queries without hits)",
            args.run,
            counts["pairs"],
            counts["queries"],
            counts["shards"],
            counts["queries_without_hits"],
        )

    run_stage("rerank_candidates", f"dataset={args.dataset} run={args.run}", write)


if __name__ == "__main__":
    main()
