"""Search every document shard's embeddings for a dataset's queries and write one TREC run (rule dense_search)."""

import argparse
import json
import logging
import time
from pathlib import Path

from beirflow.dense.search import DenseSettings, gpu_available, gpu_count, read_embeddings, read_ids, search_columns
from beirflow.runs.columns import check_run_columns, write_hit_columns
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import Writer, verify
from beirflow.workflow.provenance import now, provenance, write_provenance
from beirflow.workflow.records import cited_models


def encode_record(path: Path) -> dict:
    """An encode job's own record (texts, dimension, device, revision), checked against what the job wrote."""
    verify(path)
    return json.loads(path.read_text(encoding="utf-8"))


def run_search(args: argparse.Namespace) -> None:
    started, clock = now(), time.monotonic()
    settings = DenseSettings.from_config(json.loads(args.params), args.key)
    if not len(args.vectors) == len(args.ids) == len(args.stats):
        raise SystemExit(
            f"--vectors, --ids and --stats name {len(args.vectors)}, {len(args.ids)} and {len(args.stats)} files: one each per shard"
        )
    files = list(zip(args.vectors, args.ids, strict=True))
    encoding = [encode_record(path) for path in args.stats]
    query_encoding = encode_record(args.query_stats)
    dimension = int(query_encoding["dimension"])
    queries = read_embeddings(args.queries, args.query_ids, int(query_encoding["texts"]), dimension)
    for (_, ids_path), shard in zip(files, encoding, strict=True):
        verify(ids_path, {"rows": int(shard["texts"])})
    corpus_ids = [doc_id for _, ids_path in files for doc_id in read_ids(ids_path)]
    use_gpu = gpu_available()
    shards = (
        read_embeddings(vectors, ids, int(shard["texts"]), dimension)
        for (vectors, ids), shard in zip(files, encoding, strict=True)
    )
    run = search_columns(
        queries, shards, corpus_ids, settings.hits, settings.index, use_gpu, settings.remove_query, key=f"{args.key}.index"
    )
    writer = Writer("dense_search", args.dataset, args.system)
    with atomic_write(args.output, check=check_run_columns, writer=writer) as handle:
        for columns in run:
            write_hit_columns(handle, columns, args.system)
    extra = {
        "documents": len(corpus_ids),
        "queries": len(queries.ids),
        "document_shards": len(files),
        "encoding_seconds": round(sum(float(shard["seconds"]) for shard in encoding), 3),
        "search_device": "gpu" if use_gpu else "cpu",
        "gpus": gpu_count() if use_gpu else 0,
        "encoding_device": sorted({shard["device"] for shard in encoding}),
        "embeddings": str(args.vectors[0].parent.parent),
        "model_parameters": encoding[0].get("model_parameters"),
    }
    revisions = sorted({str(shard["model_revision"]) for shard in encoding})
    record = provenance(
        dataset=args.dataset, system=args.system, family="dense", config=settings.__dict__, started=started,
        wall_time_s=time.monotonic() - clock, model_revision=revisions[0] if len(revisions) == 1 else ", ".join(revisions), extra={**extra, **cited_models(args.model_records)},
    )  # fmt: skip
    write_provenance(args.provenance, record)
    logging.info(
        "%d queries over %d documents in %d shards (%s)", len(queries.ids), len(corpus_ids), len(files), extra["search_device"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", required=True, type=Path, help="the queries' vectors (.npy)")
    parser.add_argument("--query-ids", required=True, type=Path, help="their ids, a line each")
    parser.add_argument("--query-stats", required=True, type=Path, help="the query encoding job's record")
    parser.add_argument(
        "--vectors", required=True, nargs="+", type=Path, help="each document shard's vectors (.npy), in corpus order"
    )
    parser.add_argument("--ids", required=True, nargs="+", type=Path, help="each shard's document ids, in the same order")
    parser.add_argument("--stats", required=True, nargs="+", type=Path, help="each shard's encoding record, in the same order")
    parser.add_argument("--params", required=True, help="the system's result-changing settings as JSON")
    parser.add_argument("--key", required=True, help="the config key errors name (dense.<system>)")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--provenance", required=True, type=Path)
    parser.add_argument(
        "--model-records", nargs="*", type=Path, default=[], help="fetch records of the encoder's model, cited in the provenance"
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--system", required=True)
    args = parser.parse_args()
    run_stage("dense_search", f"dataset={args.dataset} system={args.system}", lambda: run_search(args))


if __name__ == "__main__":
    main()
