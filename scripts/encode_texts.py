"""Encode one document shard, or a dataset's queries, into embeddings (rules encode_documents, encode_queries)."""

import argparse
import json
import logging
import time
from pathlib import Path

from beirflow.data.beir import document_text, iter_corpus, read_prepared_queries
from beirflow.data.shards import verified_shard
from beirflow.dense.search import DenseSettings, write_embeddings
from beirflow.models.batching import TokenBudget
from beirflow.models.encoder import SPECB_BRACKETS, EncoderSettings, TextEncoder
from beirflow.models.loading import device_name, pick_device, resolve_model
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.errors import DataError
from beirflow.workflow.fetch import use_records
from beirflow.workflow.integrity import Writer, verify
from beirflow.workflow.provenance import slurm_job


def read_texts(path: Path, kind: str, prefix: str) -> tuple[list[str], list[str]]:
    """The texts to encode, checked against their producer's record first."""
    if kind == "queries":
        verify(path)
        queries = read_prepared_queries(path)
        return list(queries), [prefix + text for text in queries.values()]
    expected = verified_shard(path)
    ids, texts = [], []
    for _, document in iter_corpus(path):
        ids.append(document.doc_id)
        texts.append(prefix + document_text(document))
    if len(ids) != expected:
        raise DataError(path, f"holds {len(ids)} documents, its manifest {expected}")
    return ids, texts


def encode(args: argparse.Namespace) -> None:
    import torch

    use_records(args.model_records)
    torch.set_num_threads(args.threads)
    settings = DenseSettings.from_config(json.loads(args.params), args.key)
    device = pick_device()
    resolved = resolve_model(settings.model, settings.revision, f"{args.key}.model")
    brackets = SPECB_BRACKETS[args.kind] if settings.specb else None
    encoder = TextEncoder(
        resolved,
        EncoderSettings(settings.pooling, settings.normalize, settings.max_length, brackets),
        args.key,
        settings.precision,
        device,
    )
    prefix = settings.query_prefix if args.kind == "queries" else settings.document_prefix
    ids, texts = read_texts(args.input, args.kind, prefix)
    budget = TokenBudget.for_batch_size(args.batch_size, device, encoder.max_length)
    started = time.monotonic()
    vectors = encoder.encode(texts, budget, what=f"{args.kind} of {args.input.name}")
    seconds = time.monotonic() - started
    writer = Writer(f"encode_{args.kind}", args.dataset, args.encoder, args.input.stem if args.kind == "documents" else None)
    write_embeddings(vectors, ids, args.vectors, args.ids, writer)
    record = {
        "writer": writer.__dict__,
        "kind": args.kind,
        "texts": len(texts),
        "dimension": encoder.dimension,
        "seconds": round(seconds, 3),
        "texts_per_second": round(len(texts) / seconds, 1) if seconds else None,
        "device": device_name(device),
        "gpus": torch.cuda.device_count() if device == "cuda" else 0,
        "precision": settings.precision,
        "pooling": encoder.pooling,
        "normalize": encoder.normalize,
        "max_length": encoder.max_length,
        "model_folder": str(resolved.folder),
        "model_revision": resolved.revision,
        "model_parameters": int(sum(parameter.numel() for parameter in encoder.model.parameters())),
        "batch_size": args.batch_size,
        **slurm_job(),
    }
    with atomic_write(args.stats, writer=writer) as handle:
        json.dump(record, handle, indent=1)
    logging.info(
        "%s: %d %s in %.1f s (%.1f/s) on %s",
        args.input,
        len(texts),
        args.kind,
        seconds,
        record["texts_per_second"] or 0,
        record["device"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True, type=Path, help="a corpus shard (JSONL) or the prepared queries")
    parser.add_argument("--kind", required=True, choices=("documents", "queries"))
    parser.add_argument("--params", required=True, help="the encoder's identity as JSON (model, revision, pooling, ...)")
    parser.add_argument("--key", required=True, help="the config key errors name (dense.<system>)")
    parser.add_argument("--batch-size", default="auto", help="'auto' or inputs per batch; changes speed, not vectors")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--model-records", nargs="*", type=Path, default=[], help="fetch records of the models to load (rule fetch_model)"
    )
    parser.add_argument("--vectors", required=True, type=Path, help="float16 .npy output")
    parser.add_argument("--ids", required=True, type=Path, help="ids output, one per line")
    parser.add_argument("--stats", required=True, type=Path, help="JSON sidecar: texts, seconds, device, revision")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--encoder", required=True, help="the encoder's identity (its folder under embeddings/)")
    args = parser.parse_args()
    run_stage("encode_texts", f"dataset={args.dataset} {args.key} {args.kind} {args.input.name}", lambda: encode(args))


if __name__ == "__main__":
    main()
