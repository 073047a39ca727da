"""Fuse the runs of several systems with ranx into one TREC run (rule fuse)."""

import argparse
import json
import time
from pathlib import Path

from beirflow.atomic import atomic_write
from beirflow.checks import check_run_file
from beirflow.cli import run_stage
from beirflow.fusion import fuse_runs
from beirflow.provenance import now, provenance, write_provenance
from beirflow.trec import read_run, write_run


def fuse(args: argparse.Namespace) -> None:
    started, clock = now(), time.monotonic()
    settings = json.loads(args.params)
    runs = [read_run(path) for path in args.runs]
    fused = fuse_runs(
        runs, settings.get("method", "rrf"), settings.get("norm", "min-max"), settings.get("params"), settings.get("hits", 1000)
    )
    with atomic_write(args.output, check=check_run_file) as handle:
        write_run(handle, {query_id: hits.items() for query_id, hits in fused.items()}, tag=args.system)
    record = provenance(
        dataset=args.dataset, system=args.system, family="fusion", config=settings, started=started,
        wall_time_s=time.monotonic() - clock, extra={"runs": [str(path) for path in args.runs], "queries": len(fused)},
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
