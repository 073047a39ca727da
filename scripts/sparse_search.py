"""Encode a dataset's queries with SPLADE and search the impact index; a TREC run and its provenance (rule sparse_search)."""

import argparse
import json
import time
from pathlib import Path

from beirflow.data.beir import read_prepared_queries
from beirflow.models.loading import device_name, pick_device, resolve_model
from beirflow.runs.columns import RunWriter, check_run_columns
from beirflow.sparse.splade import SpladeEncoder, SpladeSettings, search
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.fetch import use_records
from beirflow.workflow.integrity import Writer, verify
from beirflow.workflow.provenance import now, provenance, slurm_job, write_provenance


def run(args: argparse.Namespace) -> None:
    import torch

    started, clock = now(), time.monotonic()
    use_records(args.model_records)
    torch.set_num_threads(args.threads)
    config = json.loads(args.params)
    settings = SpladeSettings.from_config(config, args.key)
    verify(args.index, once_per_node=True)
    verify(args.queries)
    queries = read_prepared_queries(args.queries)
    device = pick_device()
    resolved = resolve_model(settings.model, settings.revision, f"{args.key}.model")
    encoder = SpladeEncoder.load(resolved, f"{args.key}.model", settings.precision, device)
    encoding = time.monotonic()
    weights = {query_id: encoder.query(text, settings.query_max_length) for query_id, text in queries.items()}
    encoding_seconds = time.monotonic() - encoding
    writer = Writer("sparse_search", args.dataset, args.system)
    with atomic_write(args.output, check=check_run_columns, writer=writer) as handle, RunWriter(handle, args.system) as run:
        for query_id, hits in search(args.index, queries, weights, settings.hits, settings.remove_query, args.threads):
            run.add(query_id, hits)
    extra = {
        "queries": len(queries),
        "index": str(args.index),
        "query_encoding_s": round(encoding_seconds, 3),
        "device": device_name(device),
        "gpus": torch.cuda.device_count() if device == "cuda" else 0,
        "model_parameters": int(sum(parameter.numel() for parameter in encoder.model.parameters())),
        **slurm_job(),
    }
    record = provenance(
        dataset=args.dataset,
        system=args.system,
        family="splade",
        config=config,
        started=started,
        wall_time_s=time.monotonic() - clock,
        model_revision=resolved.revision,
        extra=extra,
    )
    write_provenance(args.provenance, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--queries", required=True, type=Path, help="prepared queries.jsonl of the split")
    parser.add_argument("--params", required=True, help="the system's resolved config as JSON")
    parser.add_argument("--key", required=True, help="the config key errors name (splade.<system>)")
    parser.add_argument("--model-records", nargs="*", type=Path, default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", required=True, type=Path, help="TREC run file")
    parser.add_argument("--provenance", required=True, type=Path)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--system", required=True)
    args = parser.parse_args()
    run_stage("sparse_search", f"dataset={args.dataset} system={args.system}", lambda: run(args))


if __name__ == "__main__":
    main()
