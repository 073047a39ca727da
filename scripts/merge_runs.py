"""Join shard run files into one TREC run (the merge step of every sharded stage)."""

import argparse
from pathlib import Path

from beirflow.atomic import atomic_write
from beirflow.cli import run_stage
from beirflow.trec import merge_runs, read_run, write_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("shards", nargs="+", type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--k", type=int, help="hits kept per query (document shards); default all")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--dataset", default="?")
    args = parser.parse_args()

    def merge() -> None:
        merged = merge_runs((read_run(path) for path in args.shards), k=args.k)
        with atomic_write(args.output) as handle:
            write_run(handle, {query_id: hits.items() for query_id, hits in merged.items()}, tag=args.tag)

    run_stage("merge_runs", f"dataset={args.dataset} system={args.tag}", merge)


if __name__ == "__main__":
    main()
