"""Fuse the runs of several systems with ranx into one TREC run (rule fuse)."""

import argparse
import json
import time
from pathlib import Path

from beirflow.fusion.fuse import fuse_files
from beirflow.runs.columns import LinesWriter, check_run_columns
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import Writer, verify
from beirflow.workflow.provenance import now, provenance, write_provenance


def fuse(args: argparse.Namespace) -> None:
    started, clock = now(), time.monotonic()
    settings = json.loads(args.params)
    for path in args.runs:
        verify(path)
    fused = fuse_files(
        args.runs,
        settings.get("method", "rrf"),
        settings.get("norm", "min-max"),
        settings.get("params"),
        settings.get("hits", 1000),
    )
    queries = 0
    with (
        atomic_write(args.output, check=check_run_columns, writer=Writer("fuse", args.dataset, args.system)) as handle,
        LinesWriter(handle, args.system) as lines,
    ):
        for batch in fused:  # formatted and written as the next batch of queries is fused
            lines.write(batch)
            queries += len(batch.query_ids.unique())
    record = provenance(
        dataset=args.dataset, system=args.system, family="fusion", config=settings, started=started,
        wall_time_s=time.monotonic() - clock, extra={"runs": [str(path) for path in args.runs], "queries": queries},
    )  # fmt: skip
    write_provenance(args.provenance, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="the TREC runs to fuse, in the config's order")
    parser.add_argument("--params", required=True, help="the fusion's settings as JSON (method, norm, params, hits)")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--provenance", required=True, type=Path)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--system", required=True)
    args = parser.parse_args()
    run_stage("fuse_runs", f"dataset={args.dataset} system={args.system}", lambda: fuse(args))


if __name__ == "__main__":
    main()
