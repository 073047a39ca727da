"""Encode one document shard into SPLADE term weights, Anserini's JsonVectorCollection (rule encode_sparse_documents)."""

import argparse
import json
import logging
import time
from pathlib import Path

from beirflow.data.beir import document_text, iter_corpus
from beirflow.data.shards import verified_shard
from beirflow.models.loading import device_name, pick_device, resolve_model
from beirflow.sparse.splade import SpladeEncoder, check_vectors, write_vectors
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.errors import DataError
from beirflow.workflow.fetch import use_records
from beirflow.workflow.integrity import Writer
from beirflow.workflow.provenance import slurm_job


def encode(args: argparse.Namespace) -> None:
    import torch

    use_records(args.model_records)
    torch.set_num_threads(args.threads)
    identity = json.loads(args.params)
    device = pick_device()
    resolved = resolve_model(identity["model"], identity["revision"], f"{args.key}.model")
    encoder = SpladeEncoder.load(resolved, f"{args.key}.model", identity["precision"], device)
    expected = verified_shard(args.input)
    ids, texts = [], []
    for _, document in iter_corpus(args.input):
        ids.append(document.doc_id)
        texts.append(document_text(document))
    if len(ids) != expected:
        raise DataError(args.input, f"holds {len(ids)} documents, its manifest {expected}")
    started = time.monotonic()
    writer = Writer("encode_sparse_documents", args.dataset, args.encoder, args.input.stem)
    with atomic_write(args.vectors, check=check_vectors, writer=writer) as handle:
        write_vectors(handle, ids, encoder.documents(texts, identity["document_max_length"], args.batch_size))
    seconds = time.monotonic() - started
    record = {
        "writer": writer.__dict__,
        "documents": len(ids),
        "seconds": round(seconds, 3),
        "documents_per_second": round(len(ids) / seconds, 1) if seconds else None,
        "device": device_name(device),
        "gpus": torch.cuda.device_count() if device == "cuda" else 0,
        "precision": identity["precision"],
        "max_length": identity["document_max_length"],
        "model_folder": str(resolved.folder),
        "model_revision": resolved.revision,
        "model_parameters": int(sum(parameter.numel() for parameter in encoder.model.parameters())),
        "batch_size": args.batch_size,
        **slurm_job(),
    }
    with atomic_write(args.record, writer=writer) as handle:
        json.dump(record, handle, indent=1)
    logging.info("%s: %d documents in %.1f s on %s", args.input, len(ids), seconds, record["device"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True, type=Path, help="a corpus shard (JSONL)")
    parser.add_argument("--params", required=True, help="the encoder's identity as JSON (model, revision, precision, max length)")
    parser.add_argument("--key", required=True, help="the config key errors name (splade.<system>)")
    parser.add_argument("--batch-size", type=int, default=32, help="documents per batch; changes speed, not weights")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model-records", nargs="*", type=Path, default=[], help="fetch records of the model (rule fetch_model)")
    parser.add_argument("--vectors", required=True, type=Path, help="JsonVectorCollection output")
    parser.add_argument("--record", required=True, type=Path, help="JSON sidecar: documents, seconds, device, revision")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--encoder", required=True)
    args = parser.parse_args()
    run_stage(
        "encode_sparse_documents", f"dataset={args.dataset} encoder={args.encoder} shard={args.input.stem}", lambda: encode(args)
    )


if __name__ == "__main__":
    main()
