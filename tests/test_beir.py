"""Reading and validating BEIR folders: every bad input names its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beirflow.data.beir import BeirFiles, prepare_dataset, read_qrels_trec, write_qrels_trec
from beirflow.workflow.errors import DataError
from conftest import SAMPLE, write_beir


def _prepare(folder: Path, split: str = "test"):
    return prepare_dataset("tiny", BeirFiles(folder, split))


def test_prepare_selects_judged_queries_and_counts_missing_documents(tiny_beir: Path) -> None:
    prepared = _prepare(tiny_beir)
    assert list(prepared.queries) == ["q1", "q2"]  # q3 has no judgements
    assert prepared.qrels == {"q1": {"d1": 1, "d2": 0}, "q2": {"q2": 1, "d9": 1}}
    report = prepared.report
    assert (report.documents, report.judged_queries, report.judgements, report.relevant_judgements) == (4, 2, 4, 3)
    assert report.judged_documents_missing_from_corpus == 1
    assert report.missing_document_examples == ["d9"]


def _corrupt_line(path: Path, line_number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "line", "text", "message"),
    [
        ("corpus.jsonl", 2, '{"_id": "d2", "text": "unterminated', "malformed JSON"),
        ("corpus.jsonl", 3, '{"title": "no id", "text": "x"}', "missing '_id'"),
        ("corpus.jsonl", 3, '{"_id": "d1", "text": "again"}', "duplicate id 'd1'"),
        ("corpus.jsonl", 1, '["not", "an", "object"]', "expected a JSON object"),
        ("queries.jsonl", 2, '{"_id": "q1", "text": "twice"}', "duplicate id 'q1'"),
        ("queries.jsonl", 1, '{"_id": "q1", "text": "   "}', "query 'q1' has no text"),
        ("qrels/test.tsv", 3, "q7\td1\t1", "query 'q7', which is not in"),
        ("qrels/test.tsv", 2, "q1\td1", "expected 3 tab-separated fields"),
        ("qrels/test.tsv", 2, "q1\td1\thigh", "relevance 'high' is not a number"),
    ],
)
def test_bad_input_names_file_and_line(tiny_beir: Path, file: str, line: int, text: str, message: str) -> None:
    _corrupt_line(tiny_beir / file, line, text)
    with pytest.raises(DataError) as caught:
        _prepare(tiny_beir)
    assert caught.value.path == tiny_beir / file
    assert caught.value.line == line
    assert message in str(caught.value)
    assert f"{tiny_beir / file}:{line}:" in str(caught.value)


def test_missing_qrels_file_is_named(tiny_beir: Path) -> None:
    with pytest.raises(DataError, match=r"qrels/dev\.tsv: qrels file not found"):
        _prepare(tiny_beir, split="dev")


def test_crlf_files_read_like_any_other(tiny_beir: Path, tmp_path: Path) -> None:
    crlf = tmp_path / "crlf"
    for relative in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        target = crlf / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((tiny_beir / relative).read_bytes().replace(b"\n", b"\r\n"))
    assert b"\r\n" in (crlf / "qrels" / "test.tsv").read_bytes()
    plain, windows = _prepare(tiny_beir), _prepare(crlf)
    assert windows.queries == plain.queries
    assert windows.qrels == plain.qrels
    assert windows.report.documents == plain.report.documents


def test_unjudged_query_without_text_is_counted_not_fatal(tiny_beir: Path) -> None:
    _corrupt_line(tiny_beir / "queries.jsonl", 3, json.dumps({"_id": "q3", "text": ""}))
    assert _prepare(tiny_beir).report.unjudged_queries_without_text == 1


def test_qrels_round_trip_through_trec_format(tmp_path: Path) -> None:
    prepared = prepare_dataset("sample", BeirFiles(SAMPLE, "test"))
    path = tmp_path / "qrels.tsv"
    with open(path, "w", encoding="utf-8") as handle:
        write_qrels_trec(prepared.qrels, handle)
    assert read_qrels_trec(path) == prepared.qrels


def test_embedded_sample_is_whole(shared_scifact: Path) -> None:
    """Every sample query keeps all its judgements, and every judged document is in the sample corpus."""
    sample = prepare_dataset("sample", BeirFiles(SAMPLE, "test"))
    full = prepare_dataset("scifact", BeirFiles(shared_scifact, "test"))
    assert sample.report.judged_documents_missing_from_corpus == 0
    assert len(sample.queries) == 50
    for query_id, judged in sample.qrels.items():
        assert judged == full.qrels[query_id]
        assert sample.queries[query_id] == full.queries[query_id]


def test_duplicate_judgement_with_conflicting_relevance(tmp_path: Path) -> None:
    folder = write_beir(
        tmp_path / "dup", [{"_id": "d1", "text": "x"}], [{"_id": "q1", "text": "x"}], [("q1", "d1", 1), ("q1", "d1", 2)]
    )
    with pytest.raises(DataError, match="judged twice"):
        _prepare(folder)
