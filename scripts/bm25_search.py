"""Search a dataset's judged queries with BM25 and write a TREC run plus its provenance (rule bm25_search)."""

import argparse
import json
import time
from pathlib import Path

from beirflow.bm25.lucene import Bm25Params, search
from beirflow.data.beir import read_prepared_queries
from beirflow.runs.columns import RunWriter, check_run_columns
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import Writer, verify
from beirflow.workflow.provenance import now, provenance, write_provenance


def run(args: argparse.Namespace) -> None:
    started, clock = now(), time.monotonic()
    config = json.loads(args.params)
    params = Bm25Params(**config)
    verify(args.index, once_per_node=True)
    verify(args.queries)
    queries = read_prepared_queries(args.queries)
    writer = Writer("bm25_search", args.dataset, args.system)
    with atomic_write(args.output, check=check_run_columns, writer=writer) as handle, RunWriter(handle, args.system) as run:
        for query_id, hits in search(args.index, queries, params, threads=args.threads):
            run.add(query_id, hits)
    record = provenance(
        dataset=args.dataset,
        system=args.system,
        family="bm25",
        config=config,
        started=started,
        wall_time_s=time.monotonic() - clock,
        extra={"queries": len(queries), "index": str(args.index)},
    )
    write_provenance(args.provenance, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--queries", required=True, type=Path, help="prepared queries.jsonl of the split")
    parser.add_argument("--output", required=True, type=Path, help="TREC run file")
    parser.add_argument("--provenance", required=True, type=Path)
    parser.add_argument("--params", required=True, help="the system's resolved config as JSON")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--system", required=True)
    args = parser.parse_args()
    run_stage("bm25_search", f"dataset={args.dataset} system={args.system}", lambda: run(args))


if __name__ == "__main__":
    main()
