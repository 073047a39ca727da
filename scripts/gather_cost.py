"""Gather every GPU-rule job's elapsed time and GPU-seconds into cost.csv (rule cost).

Inputs are the jobs' own records, found by their paths: rerank shard sidecars
(results/{dataset}/rerank/{system}/shards/{shard}.json), encoding records
(results/{dataset}/embeddings/{encoder}/corpus/{shard}.json, .../queries.json) and dense search
provenance (results/{dataset}/dense/{system}/provenance.json), each with its benchmark file.
"""

import argparse
import json
import re
from pathlib import Path

from beirflow.atomic import atomic_write
from beirflow.cli import run_stage
from beirflow.cost import JobRecord, job_costs, sacct_usage, to_csv

PATTERNS = (
    ("rerank_shard", re.compile(r"results/(?P<dataset>[^/]+)/rerank/(?P<system>[^/]+)/shards/(?P<shard>\d{4})\.json$")),
    ("encode_documents", re.compile(r"results/(?P<dataset>[^/]+)/embeddings/(?P<encoder>[^/]+)/corpus/(?P<shard>\d{4})\.json$")),
    ("encode_queries", re.compile(r"results/(?P<dataset>[^/]+)/embeddings/(?P<encoder>[^/]+)/queries\.json$")),
    ("dense_search", re.compile(r"results/(?P<dataset>[^/]+)/dense/(?P<system>[^/]+)/provenance\.json$")),
)


def benchmark_seconds(path: Path) -> float | None:
    if not path.is_file():
        return None
    header, values = path.read_text(encoding="utf-8").splitlines()[:2]
    return float(dict(zip(header.split("\t"), values.split("\t"), strict=False))["s"])


def record_for(path: Path, encoders: dict[str, list[str]]) -> JobRecord:
    text = path.as_posix()
    for rule, pattern in PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        fields = match.groupdict()
        systems = encoders.get(fields["encoder"], [fields["encoder"]]) if "encoder" in fields else [fields["system"]]
        unit = fields.get("encoder") or fields["system"]
        job = f"{unit}/{fields['shard']}" if "shard" in fields else (f"{unit}/queries" if rule == "encode_queries" else unit)
        record = json.loads(path.read_text(encoding="utf-8"))
        root = text[: match.start()]
        benchmark = Path(root + f"benchmarks/{rule}/{fields['dataset']}/{job}.tsv")
        return JobRecord(
            fields["dataset"],
            tuple(systems),
            rule,
            job,
            record.get("slurm_job_id"),
            benchmark_seconds(benchmark),
            int(record.get("gpus", 0)),
        )
    raise ValueError(f"{path}: not the record of a GPU-rule job")


def gather(args: argparse.Namespace) -> None:
    encoders = {key: systems.split(",") for key, systems in (item.split("=", 1) for item in args.encoder)}
    records = [record_for(path, encoders) for path in args.records]
    costs = job_costs(records, sacct_usage(record.slurm_job_id for record in records if record.slurm_job_id))
    with atomic_write(args.output) as handle:
        handle.write(to_csv(costs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("records", nargs="*", type=Path, help="the GPU-rule jobs' sidecar and provenance files")
    parser.add_argument("--encoder", action="append", default=[], help="encoder=system,system: the systems an encoding serves")
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args()
    run_stage("cost", "all GPU-rule jobs", lambda: gather(args))


if __name__ == "__main__":
    main()
