"""Stage programs: a failure is one log line naming the stage, the dataset and the system, and exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, recorded


def test_failed_stage_names_dataset_and_system(tmp_path: Path) -> None:
    missing = tmp_path / "queries.jsonl"
    command = [
        sys.executable,
        str(REPO / "scripts" / "bm25_search.py"),
        "--index",
        str(tmp_path / "index"),
        "--queries",
        str(missing),
        "--output",
        str(tmp_path / "run.trec"),
        "--provenance",
        str(tmp_path / "p.json"),
        "--params",
        "{}",
        "--dataset",
        "nfcorpus",
        "--system",
        "bm25-flat",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    index = tmp_path / "index"
    assert f"bm25_search failed for dataset=nfcorpus system=bm25-flat: {index}: it has no record" in result.stderr
    assert not (tmp_path / "run.trec").exists()


def test_evaluating_a_malformed_run_names_its_line(tmp_path: Path) -> None:
    run, qrels = tmp_path / "run.trec", tmp_path / "qrels.tsv"
    run.write_text("q1 Q0 d1 1 2.0 x\nq1 Q0 d2 2\n")
    qrels.write_text("q1 0 d1 1\n")
    recorded(run, "bm25_search")
    recorded(qrels, "prepare_dataset")
    command = [
        sys.executable,
        str(REPO / "scripts" / "evaluate_dataset.py"),
        "--systems",
        "s",
        "--runs",
        str(run),
        "--qrels",
        str(qrels),
        "--metrics",
        "ndcg@10",
        "--output",
        str(tmp_path / "m.json"),
        "--dataset",
        "d",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert f"evaluate failed for dataset=d: {run}:2: expected 6 fields" in result.stderr
    assert not (tmp_path / "m.json").exists()


def test_a_rerank_job_whose_model_cannot_load_names_the_reranker_key_and_writes_nothing(tmp_path: Path) -> None:
    import json

    from beirflow.rerank.docstore import build_document_store

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "title": "", "text": "cats"}\n')
    build_document_store(corpus, tmp_path / "documents.sqlite")
    candidates = tmp_path / "0000.jsonl"
    candidates.write_text(json.dumps({"query_id": "q1", "query": "cats", "doc_ids": ["d1"]}) + "\n")
    empty_model = tmp_path / "model"
    empty_model.mkdir()
    (empty_model / "config.json").write_text("{}")
    params = json.dumps({"kind": "cross-encoder", "model": str(empty_model), "first_stage": "bm25-flat"})
    command = [
        sys.executable,
        str(REPO / "scripts" / "rerank_shard.py"),
        "--candidates",
        str(candidates),
        "--documents",
        str(tmp_path / "documents.sqlite"),
        "--params",
        params,
        "--output",
        str(tmp_path / "0000.trec"),
        "--stats",
        str(tmp_path / "0000.json"),
        "--dataset",
        "scifact",
        "--system",
        "minilm-ce",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert (
        f"rerank_shard failed for dataset=scifact system=minilm-ce shard=0000: config key rerank.minilm-ce.model: model '{empty_model}' has no weights"
        in result.stderr
    )
    assert not (tmp_path / "0000.trec").exists() and not (tmp_path / "0000.json").exists()
