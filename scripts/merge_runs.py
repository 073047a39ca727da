"""Join shard run files into one TREC run (the merge step of every sharded stage), with its provenance."""

import argparse
import json
import time
from pathlib import Path

from beirflow.runs.columns import check_run_columns, write_merged_run_files
from beirflow.runs.trec import merge_runs, read_run, write_run
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import Writer, verify
from beirflow.workflow.provenance import now, provenance, shard_summary, write_provenance
from beirflow.workflow.records import cited_models


def merge(args: argparse.Namespace) -> None:
    started, clock = now(), time.monotonic()
    shards = []
    for path in args.stats:
        verify(path)
        shards.append(json.loads(path.read_text(encoding="utf-8")))
    for path, shard in zip(args.shards, shards, strict=False):
        verify(path, {"hits": shard["pairs"]})  # a shard job writes one hit per candidate pair
    writer = Writer(f"{args.family}_merge", args.dataset, args.tag)
    with atomic_write(args.output, check=check_run_columns, writer=writer) as handle:
        if not write_merged_run_files(handle, args.shards, args.tag, k=args.k):
            # line by line: its errors name the line, or the shards that overlap
            merged = merge_runs((read_run(path) for path in args.shards), k=args.k)
            write_run(handle, {query_id: hits.items() for query_id, hits in merged.items()}, tag=args.tag)
    if args.provenance:
        summary = shard_summary(shards)
        record = provenance(
            dataset=args.dataset, system=args.tag, family=args.family, config=json.loads(args.params), started=started,
            wall_time_s=time.monotonic() - clock, model_revision=summary.pop("model_revision", None), extra={**summary, **cited_models(args.model_records)},
        )  # fmt: skip
        write_provenance(args.provenance, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("shards", nargs="+", type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--k", type=int, help="hits kept per query (document shards); default all")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--dataset", default="?")
    parser.add_argument("--family", default="?")
    parser.add_argument("--params", default="{}", help="the system's score-changing settings as JSON, for the provenance")
    parser.add_argument("--stats", nargs="*", type=Path, default=[], help="the shard jobs' JSON sidecars")
    parser.add_argument("--provenance", type=Path, help="where to write the merged run's provenance")
    parser.add_argument(
        "--model-records",
        nargs="*",
        type=Path,
        default=[],
        help="fetch records of the models the shards ran, cited in the provenance",
    )
    args = parser.parse_args()
    run_stage("merge_runs", f"dataset={args.dataset} system={args.tag}", lambda: merge(args))


if __name__ == "__main__":
    main()
