"""Rerank one query shard's candidates with a reranker and write its TREC run (rule rerank_shard)."""

import argparse
import json
import logging
from pathlib import Path

from beirflow.models.batching import TokenBudget
from beirflow.models.loading import device_name, pick_device
from beirflow.rerank.candidates import read_candidates
from beirflow.rerank.docstore import DocumentStore
from beirflow.rerank.scoring import Reranker, RerankSettings
from beirflow.runs.checks import check_run_file
from beirflow.runs.trec import write_query_hits
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.fetch import use_records
from beirflow.workflow.integrity import Writer
from beirflow.workflow.provenance import slurm_job


def rerank(args: argparse.Namespace) -> None:
    import torch

    use_records(args.model_records)
    torch.set_num_threads(args.threads)
    settings = RerankSettings.from_config(json.loads(args.params), f"rerank.{args.system}")
    device = pick_device()
    reranker = Reranker(settings, f"rerank.{args.system}", device)
    budget = TokenBudget.for_batch_size(args.batch_size, device, reranker.max_length)
    shard = read_candidates(args.candidates)
    store = DocumentStore(args.documents)
    hits, stats = reranker.rerank(shard, store, budget)
    store.close()
    writer = Writer("rerank_shard", args.dataset, args.system, args.candidates.stem)
    with atomic_write(args.output, check=check_run_file, writer=writer) as handle:
        for candidates, scored in zip(shard, hits, strict=False):
            write_query_hits(handle, candidates.query_id, scored, tag=args.system)
    record = {
        "queries": stats.queries,
        "pairs": stats.pairs,
        "seconds": round(stats.seconds, 3),
        "pairs_per_second": round(stats.pairs_per_second, 1),
        "device": device_name(device),
        "gpus": torch.cuda.device_count() if device == "cuda" else 0,
        "precision": settings.precision,
        "model_folder": str(reranker.resolved.folder),
        "model_revision": reranker.resolved.revision,
        "model_parameters": reranker.parameters,
        "max_length": reranker.max_length,
        "batch_size": args.batch_size,
        "final_tokens_per_batch": budget.tokens,
        **slurm_job(),
    }
    with atomic_write(args.stats, writer=writer) as handle:
        json.dump({"writer": writer.__dict__, **record}, handle, indent=1)
    logging.info(
        "%s: %d pairs of %d queries in %.1f s (%.1f pairs/s) on %s",
        args.candidates,
        stats.pairs,
        stats.queries,
        stats.seconds,
        stats.pairs_per_second,
        record["device"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", required=True, type=Path, help="one shard's candidates (JSONL)")
    parser.add_argument("--documents", required=True, type=Path, help="the dataset's document store")
    parser.add_argument("--params", required=True, help="the reranker's score-changing settings as JSON")
    parser.add_argument("--batch-size", default="auto", help="'auto' or inputs per batch; changes speed, not scores")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--model-records", nargs="*", type=Path, default=[], help="fetch records of the models to load (rule fetch_model)"
    )
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--stats", required=True, type=Path, help="JSON sidecar: pairs, seconds, device, revision")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--system", required=True)
    args = parser.parse_args()
    run_stage("rerank_shard", f"dataset={args.dataset} system={args.system} shard={args.candidates.stem}", lambda: rerank(args))


if __name__ == "__main__":
    main()
