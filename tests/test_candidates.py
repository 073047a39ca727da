"""The document store (texts by id) and the candidates split by query shard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beirflow.data.shards import write_shards
from beirflow.rerank.candidates import read_candidates, top_hits, write_candidates
from beirflow.rerank.docstore import DocumentStore, build_document_store
from beirflow.workflow.errors import DataError
from conftest import SAMPLE, recorded


def test_store_returns_the_requested_documents_only(tmp_path: Path) -> None:
    count = build_document_store(SAMPLE / "corpus.jsonl", tmp_path / "documents.sqlite")
    assert count == 600
    store = DocumentStore(tmp_path / "documents.sqlite")
    first = json.loads((SAMPLE / "corpus.jsonl").read_text().splitlines()[0])
    fetched = store.fetch([first["_id"], first["_id"]])
    assert list(fetched) == [first["_id"]]
    assert (fetched[first["_id"]].title, fetched[first["_id"]].text) == (first["title"], first["text"])
    assert len(store.fetch([json.loads(line)["_id"] for line in (SAMPLE / "corpus.jsonl").read_text().splitlines()])) == 600
    with pytest.raises(DataError, match=r"documents.sqlite: 1 requested documents are not in the corpus, e.g. 'nope'"):
        store.fetch([first["_id"], "nope"])


def test_store_build_stops_at_a_bad_line_and_leaves_nothing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n')
    with pytest.raises(DataError, match=r"corpus.jsonl:2: duplicate id 'a'"):
        build_document_store(corpus, tmp_path / "documents.sqlite")
    assert list(tmp_path.iterdir()) == [corpus]


def _queries(folder: Path, ids: list[str]) -> Path:
    path = folder / "queries.jsonl"
    path.write_text("".join(json.dumps({"_id": q, "text": f"text of {q}"}) + "\n" for q in ids))
    write_shards(path, folder / "shards", per_shard=2)
    return folder / "shards"


def test_candidates_follow_the_query_shards_and_cut_at_depth(tmp_path: Path) -> None:
    shards = _queries(tmp_path, ["q1", "q2", "q3"])
    run = tmp_path / "run.trec"
    run.write_text("q3 Q0 x 1 5.0 t\nq1 Q0 b 1 2.0 t\nq1 Q0 a 2 2.0 t\nq1 Q0 c 3 9.0 t\nq1 Q0 d 4 1.0 t\n")
    recorded(run)
    counts = write_candidates(run, shards, tmp_path / "out", depth=3)
    assert counts == {"shards": 2, "queries": 3, "pairs": 4, "queries_without_hits": 1, "depth": 3}
    first, second = read_candidates(tmp_path / "out" / "0000.jsonl"), read_candidates(tmp_path / "out" / "0001.jsonl")
    assert [(c.query_id, c.query, c.doc_ids) for c in first] == [("q1", "text of q1", ["c", "a", "b"]), ("q2", "text of q2", [])]
    assert [(c.query_id, c.doc_ids) for c in second] == [("q3", ["x"])]


def test_a_query_of_the_run_missing_from_the_queries_names_both_files(tmp_path: Path) -> None:
    shards = _queries(tmp_path, ["q1"])
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 a 1 1.0 t\nq9 Q0 a 1 1.0 t\n")
    recorded(run)
    with pytest.raises(
        DataError, match=rf"{run}: query 'q9' \(1 in all\) is in the run but not in the queries file {tmp_path / 'queries.jsonl'}"
    ):
        write_candidates(run, shards, tmp_path / "out", depth=10)
    assert not (tmp_path / "out").exists()


def test_top_hits_breaks_ties_by_document_id() -> None:
    assert top_hits({"b": 1.0, "a": 1.0, "c": 0.5}, 2) == ["a", "b"]
