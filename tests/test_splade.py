"""SPLADE (learned sparse retrieval) against Pyserini's own path on the same tiny model and data: a random
2-layer BERT masked-LM over BERT's real uncased vocabulary (the one all-MiniLM-L6-v2 ships). Pyserini's
SpladeDocumentEncoder and SpladeQueryEncoder give the same quantized weight per term; its JSON vectors
indexed by `python -m pyserini.index.lucene --impact --pretokenized` and searched by LuceneImpactSearcher
with its own query encoder give the same hits and scores as beirflow's index and search."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from beirflow.data.beir import document_text, iter_corpus, read_queries
from beirflow.models.loading import resolve_model
from beirflow.sparse.splade import SpladeEncoder, build_impact_index, check_vectors, search, write_vectors
from beirflow.workflow import paths
from beirflow.workflow.jvm import start_jvm
from beirflow.workflow.plan import build
from conftest import REPO, SAMPLE, Workflow, fork

BATCH = 16
DOCUMENTS = 96


def build_tiny_splade(folder: Path, seed: int = 0) -> Path:
    """A random BERT masked-LM of width 32 with BERT's uncased WordPiece vocabulary; its head's bias is
    lowered so that a text weighs some dozens of terms, as a trained SPLADE's does, not half the vocabulary."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from model_builders import minilm_folder

    words = (minilm_folder() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tokenizer = BertTokenizerFast(vocab={word: index for index, word in enumerate(words)}, do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        initializer_range=0.2,
    )  # fmt: skip
    model = BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.bias.fill_(-4.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def splade(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The model, the sample's first documents and its queries, encoded by beirflow and by Pyserini."""
    start_jvm()  # Pyserini's imports start a JVM of their own otherwise, which cannot run its classes
    from pyserini.encode import SpladeDocumentEncoder, SpladeQueryEncoder

    folder = build_tiny_splade(tmp_path_factory.mktemp("splade") / "model")
    documents = [document for _, document in iter_corpus(SAMPLE / "corpus.jsonl")][:DOCUMENTS]
    queries = {query_id: text for query_id, (_, text) in read_queries(SAMPLE / "queries.jsonl").items()}
    ours = SpladeEncoder.load(resolve_model(str(folder), None, "splade.tiny.model"), "splade.tiny.model", "fp32", "cpu")
    theirs = SpladeDocumentEncoder(str(folder), device="cpu")
    their_documents = []
    for start in range(0, len(documents), BATCH):
        batch = documents[start : start + BATCH]
        their_documents += theirs.encode(texts=[d.text for d in batch], titles=[d.title for d in batch], max_length=512)
    their_queries = SpladeQueryEncoder(str(folder), device="cpu")
    return {
        "folder": folder,
        "documents": documents,
        "queries": queries,
        "our_documents": list(ours.documents([document_text(d) for d in documents], 512, BATCH)),
        "their_documents": their_documents,
        "our_queries": {query_id: ours.query(text, 256) for query_id, text in queries.items()},
        "their_queries": {query_id: their_queries.encode(text) for query_id, text in queries.items()},
        "their_query_encoder": their_queries,
    }


def test_the_weights_per_term_are_pyserinis(splade: dict) -> None:
    assert splade["our_documents"] == splade["their_documents"]
    assert splade["our_queries"] == splade["their_queries"]
    terms = [len(vector) for vector in splade["our_documents"]]
    assert min(terms) > 10 and max(terms) < 1000  # sparse, and not empty: a comparison that can fail
    assert any(0 in vector.values() for vector in splade["our_documents"])  # weights that quantize to 0 are kept


def test_the_index_and_the_search_give_pyserinis_hits_and_scores(splade: dict, tmp_path: Path) -> None:
    from pyserini.search.lucene import LuceneImpactSearcher

    documents = splade["documents"]
    # Pyserini's path: its encoder's output as its encode CLI writes it, its indexing CLI, its searcher and encoder.
    their_vectors = tmp_path / "theirs"
    their_vectors.mkdir()
    with open(their_vectors / "embeddings.jsonl", "w", encoding="utf-8") as handle:
        for document, vector in zip(documents, splade["their_documents"], strict=True):
            contents = f"{document.title}\n{document.text}"
            handle.write(json.dumps({"id": document.doc_id, "contents": contents, "vector": vector}) + "\n")
    argv = ["pyserini.index.lucene", "--collection", "JsonVectorCollection", "--input", str(their_vectors),
            "--index", str(tmp_path / "their-index"), "--generator", "DefaultLuceneDocumentGenerator", "--threads", "1",
            "--impact", "--pretokenized"]  # fmt: skip
    # Pyserini's indexing CLI as `python -m pyserini.index.lucene` runs it, in a JVM started as beirflow starts it.
    program = f"from beirflow.workflow.jvm import start_jvm; start_jvm(); import runpy, sys; sys.argv = {argv!r}; runpy.run_module('pyserini.index.lucene', run_name='__main__')"
    subprocess.run(
        [sys.executable, "-c", program],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "scripts")},
    )
    searcher = LuceneImpactSearcher(str(tmp_path / "their-index"), splade["their_query_encoder"])
    queries = splade["queries"]
    results = searcher.batch_search(list(queries.values()), list(queries), k=20, threads=1)
    theirs = {query_id: [(hit.docid, hit.score) for hit in results[query_id]] for query_id in queries}

    # beirflow's: vectors in two shards, one impact index of both, the same queries.
    shards = [tmp_path / "0000.jsonl", tmp_path / "0001.jsonl"]
    half = len(documents) // 2
    for path, part, vectors in zip(
        shards,
        (documents[:half], documents[half:]),
        (splade["our_documents"][:half], splade["our_documents"][half:]),
        strict=True,
    ):
        with open(path, "w", encoding="utf-8") as handle:
            write_vectors(handle, [document.doc_id for document in part], vectors)
    assert sum(check_vectors(path)["documents"] for path in shards) == len(documents)
    build_impact_index(shards, tmp_path / "our-index")
    ours = dict(search(tmp_path / "our-index", queries, splade["our_queries"], hits=20, remove_query=False))

    assert ours == theirs
    assert sum(len(hits) for hits in ours.values()) > 5 * len(queries)  # the queries find documents
    assert len({score for hits in ours.values() for _, score in hits}) > 20  # scores that differ


@pytest.mark.workflow
def test_two_splade_systems_added_to_a_finished_run_share_one_encoding_and_index(
    splade: dict, done: Workflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Added to the embedded default's finished run, two systems of one encoder (one searching 100 hits):
    only their jobs run (the corpus encoded once, indexed once, searched twice), and the runs, the cost table,
    the leaderboard and the report carry them."""
    workflow = fork(done, tmp_path / "work")
    entry = {"model": str(splade["folder"]), "precision": "fp32", "resources": {"gpus": 0, "mem_mb": 4000, "threads": 2}}
    config = {**workflow.config, "splade": {"tiny-splade": entry, "tiny-splade-100": {**entry, "hits": 100}}}
    variant = workflow.variant(config)
    planned = variant.planned_jobs()
    monkeypatch.chdir(tmp_path)  # the plan caches counts of local folders under .snakemake/
    shards = len(build(config).document_shards("scifact-sample"))
    assert planned == {
        "fetch_model": 1,
        "encode_sparse_documents": shards,
        "sparse_index": 1,
        "sparse_search": 2,
        "evaluate": 1,
        "cost": 1,
        "leaderboard": 1,
        "report": 1,
        "all": 1,
    }, planned
    variant.run()
    assert variant.planned_jobs() == {}
    runs = {system: workflow.path(paths.run("splade", "scifact-sample", system)) for system in ("tiny-splade", "tiny-splade-100")}
    lines = {system: path.read_text(encoding="utf-8").splitlines() for system, path in runs.items()}
    assert 0 < len(lines["tiny-splade-100"]) <= 100 * 50 < len(lines["tiny-splade"])
    with open(workflow.path(paths.cost()), encoding="utf-8") as handle:
        rules = [row["rule"] for row in csv.DictReader(handle) if row["system"] == "tiny-splade"]
    assert sorted(rules) == sorted(["sparse_search", *["encode_sparse_documents"] * shards])
    assert "tiny-splade-100" in workflow.path(paths.leaderboard("md")).read_text(encoding="utf-8")
    report = json.loads(workflow.path(paths.report("report.json")).read_text(encoding="utf-8"))
    assert "tiny-splade" in json.dumps(report)
