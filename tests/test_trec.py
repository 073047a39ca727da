"""TREC runs: the writer, the reader, and merging shard runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import ranx

from beirflow.runs.checks import check_run_file
from beirflow.runs.table import RunTable, read_run_table
from beirflow.runs.trec import iter_query_hits, merge_runs, read_run, write_run
from beirflow.workflow.errors import DataError


def test_written_run_reads_back_with_ranx(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    with open(path, "w", encoding="utf-8") as handle:
        write_run(handle, {"q1": [("d2", 1.5), ("d1", 1.5), ("d3", 9.0)], "q2": [("d1", 0.25)]}, tag="bm25-flat")
    lines = path.read_text().splitlines()
    # score descending, then docid ascending (Pyserini's tie breaker); tag last
    assert lines[:3] == ["q1 Q0 d3 1 9.0 bm25-flat", "q1 Q0 d1 2 1.5 bm25-flat", "q1 Q0 d2 3 1.5 bm25-flat"]
    assert ranx.Run.from_file(str(path), kind="trec").to_dict() == {"q1": {"d3": 9.0, "d1": 1.5, "d2": 1.5}, "q2": {"d1": 0.25}}
    assert read_run(path) == {"q1": {"d3": 9.0, "d1": 1.5, "d2": 1.5}, "q2": {"d1": 0.25}}


def test_close_model_scores_stay_distinct_and_read_back_exactly(tmp_path: Path) -> None:
    """Two monoT5 log-probabilities 1e-8 apart: six decimals would make them a tie ordered by docid."""
    import numpy as np

    close = [float(np.float32(-0.123456789)), float(np.nextafter(np.float32(-0.123456789), np.float32(0)))]
    path = tmp_path / "run.trec"
    with open(path, "w", encoding="utf-8") as handle:
        write_run(handle, {"q": [("a", close[0]), ("b", close[1]), ("c", 1e-300), ("d", -3.0e7)]}, tag="t")
    assert read_run(path) == {"q": {"b": close[1], "a": close[0], "c": 1e-300, "d": -3.0e7}}
    assert [line.split()[2] for line in path.read_text().splitlines()] == ["c", "b", "a", "d"]


def read_by_query(path: Path) -> dict[str, dict[str, float]]:
    return dict(iter_query_hits(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("q1 Q0 d1 1 0.5\n", "expected 6 fields"),
        ("q1 Q0 d1 1 high tag\n", "score 'high'"),
        ("q1 Q0 d1 1 1 t\nq1 Q0 d1 2 0.5 t\n", "appears twice"),
    ],
)
@pytest.mark.parametrize("reader", [read_run, read_run_table, read_by_query])
def test_malformed_runs_name_the_line(tmp_path: Path, content: str, message: str, reader) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.trec"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        reader(path)
    assert caught.value.line == content.count("\n")


def _as_dict(table: RunTable) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {query_id: {} for query_id in table.query_ids}
    for query_row, doc_row, score in zip(table.query_rows, table.doc_rows, table.scores, strict=True):
        run[table.query_ids[query_row]][table.doc_ids[doc_row]] = float(score)
    return run


@pytest.mark.parametrize(
    "content",
    [
        "q1 Q0 d3 1 9.0 bm25\nq1 Q0 d1 2 1.5 bm25\nq2 Q0 d1 1 0.25 bm25\nq1 Q0 d2 3 1.5 bm25\n",  # q1 in two places
        "q1\tQ0\td3\t1\t9.0\tx\nq2 Q0  d1 1 -1e-300 x  \n",  # tabs, two spaces, trailing spaces
        'q1 Q0 d3 1 9 x\r\n\nq1 Q0 "d1 2 nan x\r\n',  # CRLF, an empty line, a quote, NaN
        "",
    ],
)
def test_the_column_reader_reads_what_the_line_reader_reads(tmp_path: Path, content: str) -> None:
    """Arrow reads what beirflow writes; whatever else read_run accepts, read_run_table reads the same (by it)."""
    path = tmp_path / "run.trec"
    path.write_bytes(content.encode())
    expected = read_run(path)
    table = read_run_table(path)
    assert table.query_ids == list(expected)
    assert str(_as_dict(table)) == str(expected)  # str: NaN equals NaN


def test_the_column_reader_reads_a_written_run_exactly(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    run = {f"q{q}": [(f"doc-{d}", float(rng.standard_normal())) for d in rng.choice(500, 50, replace=False)] for q in range(40)}
    path = tmp_path / "run.trec"
    with open(path, "w", encoding="utf-8") as handle:
        write_run(handle, run, tag="t")
    assert _as_dict(read_run_table(path)) == read_run(path)


def test_a_run_read_a_query_at_a_time_is_the_whole_run(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    run = {f"q{q}": [(f"doc-{d}", float(rng.integers(3))) for d in rng.choice(90, 30, replace=False)] for q in range(25)}
    path = tmp_path / "run.trec"
    with open(path, "w", encoding="utf-8") as handle:
        write_run(handle, run, tag="t")
    read = list(iter_query_hits(path))
    assert [query_id for query_id, _ in read] == list(run)
    assert dict(read) == read_run(path)


def test_a_query_found_again_after_others_names_its_line_when_read_a_query_at_a_time(tmp_path: Path) -> None:
    """Every run beirflow publishes holds each query's hits together (checks.check_run_file)."""
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 d3 1 9.0 t\nq2 Q0 d1 1 0.25 t\nq1 Q0 d2 2 1.5 t\n")
    with pytest.raises(DataError, match=r"run.trec:3: query 'q1' appears again after other queries; rebuild it with") as caught:
        read_by_query(path)
    assert caught.value.line == 3


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        ("q1 Q0 d3 1 9.0 t\nq2 Q0 d1 1 0.25 t\nq1 Q0 d2 2 1.5 t\n", "query 'q1' appears again after other queries", 3),
        ("q1 Q0 d3 1 9.0 t\nq1 Q0 d1 two 1.5 t\n", "rank 'two' or score '1.5' is not a number", 2),
        ("q1 Q0 d3 1 9.0 t\nq1 Q0 d1 2 1.5\n", "expected 6 fields", 2),
    ],
)
def test_the_check_before_publishing_refuses_a_run_naming_the_line(tmp_path: Path, content: str, message: str, line: int) -> None:
    path = tmp_path / "run.trec"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        check_run_file(path)
    assert caught.value.line == line
    path.write_text("q1 Q0 d3 1 9.0 t\nq1 Q0 d1 2 1.5 t\nq2 Q0 d1 1 -1e-300 t\n")
    check_run_file(path)


def test_merging_query_shards_is_their_union() -> None:
    merged = merge_runs([{"q1": {"a": 1.0}}, {"q2": {"b": 2.0}}])
    assert merged == {"q1": {"a": 1.0}, "q2": {"b": 2.0}}


def test_merging_document_shards_keeps_the_best_k() -> None:
    shards = [{"q": {"a": 0.9, "b": 0.1}}, {"q": {"c": 0.5, "d": 0.95}}]
    assert merge_runs(shards, k=2) == {"q": {"d": 0.95, "a": 0.9}}


def test_overlapping_shards_are_an_error() -> None:
    with pytest.raises(ValueError, match="document 'a' in two shards"):
        merge_runs([{"q": {"a": 1.0}}, {"q": {"a": 1.0}}])


def test_the_two_tie_orders_are_opposite_on_ties_and_agree_on_scores() -> None:
    """Random runs with many ties: run order and trec_eval's order rank by score alike and break
    every tie in opposite docid directions, each a strict total order."""
    import itertools
    import random

    from beirflow.runs.trec import ordered_hits, trec_eval_order

    rng = random.Random(7)
    for _ in range(200):
        hits = {f"d{rng.randrange(60):02d}": float(rng.randrange(5)) for _ in range(rng.randrange(1, 40))}
        ours = [doc_id for doc_id, _ in ordered_hits(hits.items())]
        theirs = trec_eval_order(hits)
        assert sorted(ours) == sorted(theirs) == sorted(hits)
        for order, tie_ascending in ((ours, True), (theirs, False)):
            for first, second in itertools.pairwise(order):
                assert hits[first] >= hits[second]
                if hits[first] == hits[second]:
                    assert (first < second) == tie_ascending
