"""Split a JSONL file (queries or corpus) into deterministic shards of a fixed size."""

import argparse
import logging
from pathlib import Path

from beirflow.data.shards import write_shards
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import Writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--per-shard", required=True, type=int)
    parser.add_argument("--expected-shards", type=int, help="the shard count the DAG was planned with")
    parser.add_argument("--dataset", default="?")
    args = parser.parse_args()

    def shard() -> None:
        writer = Writer("shard_jsonl", args.dataset, shard=args.output_dir.name)
        count = write_shards(args.input, args.output_dir, args.per_shard, args.expected_shards, writer)
        logging.info("%s: %d shards of up to %d records in %s", args.input, count, args.per_shard, args.output_dir)

    run_stage("shard_jsonl", f"dataset={args.dataset} input={args.input}", shard)


if __name__ == "__main__":
    main()
