"""Runs written and checked as columns (beirflow.runs.columns) are the line-by-line writer's bytes and the
line-by-line check's verdicts, and the fuse job's file is the fusion written line by line."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from beirflow.fusion.fuse import fuse_runs
from beirflow.runs import compiled
from beirflow.runs.checks import check_run_file
from beirflow.runs.columns import (
    ARROW_AGREES,
    HitColumns,
    RunWriter,
    _check_in_pieces,
    arrow_run_lines,
    check_run_columns,
    merged_run_files,
    run_lines,
    score_texts,
)
from beirflow.runs.trec import merge_runs, ordered_hits, read_run, write_query_hits, write_run
from beirflow.workflow.errors import DataError
from conftest import REPO


def _double(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


# Ryu's own cases (ryu/tests/d2s_test.cc): trailing zeros, regressions, near powers of five, the shifts at the ends
# of the exponent range, small integers and sums that need every digit: digits Arrow's cast must get right too.
RYU_CASES = [
    2.98023223876953125e-8, -2.109808898695963e16, 4.940656e-318, 1.18575755e-316, 2.989102097996e-312,
    9.0608011534336e15, 4.708356024711512e18, 9.409340012568248e18, 1.2345678, 2.2250738585072014e-308,
    *(_double(bits) for bits in (0x4830F0CF064DD592, 0x4840F0CF064DD592, 0x4850F0CF064DD592, 0x7FEFFFFFFFFFFFFF, 1)),
    *(_double(exponent << 52 | mantissa) for exponent, mantissa in ((4, 0), (6, 2**53 - 1), (41, 0), (40, 2**53 - 1), (1077, 0), (1076, 2**53 - 1), (307, 0), (306, 2**53 - 1), (934, 0x000FA7161A4D6E0C))),
    *(float(f"1.{'234567890123456'[:digits]}7") for digits in range(16)), *(4.294967294 + step * 1e-9 for step in range(5)),
    *(10.0**power for power in range(-6, 24)), *(1e15 + 10.0**power for power in range(15)), *(8.0**power for power in range(1, 19)),
    2.0**53 - 1, 2.0**53, 2.0**53 + 2, 2.0**63, 2.0**64,
]  # fmt: skip


def _scores() -> np.ndarray:
    """Every magnitude a score can take, both signs, the edges where Arrow's notation and repr's part, integral values,
    zeros, subnormals, the extremes, Ryu's own cases and what fusion and the models write (reciprocal ranks,
    log-probabilities)."""
    rng = np.random.default_rng(7)
    spread = np.sign(rng.standard_normal(200_000)) * 10 ** rng.uniform(-12, 20, 200_000)
    edges = np.array(
        [
            edge * factor
            for edge in (*ARROW_AGREES, 1e16, 1e15, 1e-5, 1e-6, 1e-7, 1e-10, 1e-100, 1e100, 1e300, 1e-300)
            for factor in (1, -1, 1 + 2**-52, 1 - 2**-53)
        ]
    )
    special = np.array([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 12.0, -3.0, 0.5, 1 / 3])
    special = np.concatenate([special, RYU_CASES, np.negative(RYU_CASES), [np.nan, -np.nan, np.inf, -np.inf]])
    reciprocal = 1 / (60 + rng.integers(1, 1000, 20_000)) + 1 / (60 + rng.integers(1, 1000, 20_000))
    return np.concatenate(
        [spread, np.round(spread, 2), spread.astype(np.float32), edges, special, reciprocal, -rng.random(20_000) * 30]
    )


def _compiled() -> object:
    """The compiled writer: this machine has a C compiler, so it must build (its fallbacks are tested below)."""
    library = compiled.library()
    assert library is not None, f"run_lines.c did not build with {compiled.compiler()} (the log says why)"
    return library


@pytest.mark.parametrize("writer", ["arrow", "compiled"])
def test_score_texts_are_repr_of_every_double(writer: str) -> None:
    """Arrow's text, rewritten into repr's notation, and the compiled writer's (Ryu's digits in repr's layout), against
    Python's own repr: the magnitudes above and a million random bit patterns (every exponent, subnormals, NaN's
    many patterns)."""
    bit_patterns = np.random.default_rng(8).integers(0, 2**64, 1_000_000, dtype=np.uint64, endpoint=False)
    for scores in (_scores(), bit_patterns.view(np.float64)):
        texts = score_texts(scores).to_pylist() if writer == "arrow" else compiled.compiled_reprs(_compiled(), scores)
        assert texts == [repr(score) for score in scores.tolist()]


def _columns(run: dict[str, list[tuple[str, float]]]) -> HitColumns:
    rows = [
        (query_id, doc_id, rank, score) for query_id, hits in run.items() for rank, (doc_id, score) in enumerate(hits, start=1)
    ]
    return HitColumns(
        pa.array([row[0] for row in rows], type=pa.string()),
        pa.array([row[1] for row in rows], type=pa.string()),
        np.array([row[2] for row in rows], dtype=np.int64),
        np.array([row[3] for row in rows], dtype=np.float64),
    )


def _ordered_run(seed: int) -> dict[str, list[tuple[str, float]]]:
    rng = np.random.default_rng(seed)
    scores = _scores()
    run = {}
    for query in range(40):
        chosen = rng.choice(len(scores), 25, replace=False)
        hits = sorted(((f"d-{index}-é", float(scores[index])) for index in chosen), key=lambda hit: (-hit[1], hit[0]))
        run[f"q{query}"] = hits
    return run


def test_run_lines_are_the_line_writers_bytes() -> None:
    """Both writers, on ids of many lengths (non-ASCII too), every kind of score, and columns sliced as the
    writer's pieces slice them."""
    _compiled()
    run = _ordered_run(1)
    written = io.StringIO()
    write_run(written, run, tag="tag")
    expected = written.getvalue().encode("utf-8")
    columns = _columns(run)
    for lines in (run_lines, arrow_run_lines):
        assert bytes(lines(columns, "tag")) == expected
        for cut in (0, 1, 333, len(columns)):
            parts = [slice(0, cut), slice(cut, None)]
            pieces = [
                HitColumns(columns.query_ids[part], columns.doc_ids[part], columns.ranks[part], columns.scores[part])
                for part in parts
            ]
            assert b"".join(bytes(lines(piece, "tag")) for piece in pieces) == expected


def test_the_disk_starts_on_each_piece_as_it_is_written(tmp_path: Path) -> None:
    """strace: every piece written to a run is followed by sync_file_range on it (the disk starts on it while the
    next is formatted), and the output's fsync, rename and the folder's fsync come after them all."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    _compiled()  # built here, not in the traced process (the compiler's own calls would be traced)
    script = (
        "import numpy as np, pyarrow as pa\n"
        "from beirflow.runs import columns\n"
        "from beirflow.workflow.atomic import atomic_write\n"
        "columns.LINES_AT_ONCE = 100\n"
        f"with atomic_write({str(tmp_path / 'run.trec')!r}) as handle, columns.LinesWriter(handle, 't') as lines:\n"
        "    lines.write(columns.HitColumns(pa.array(['q'] * 450), pa.array([f'd{i}' for i in range(450)]),"
        " np.arange(1, 451), np.linspace(1, 0, 450)))\n"
    )
    traced = subprocess.run(
        [strace, "-f", "-e", "trace=sync_file_range,fsync,rename", sys.executable, "-c", script],
        capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO / "scripts"), compiled.CACHE_VARIABLE: str(compiled.cache_folder()), "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    calls = re.findall(r"\b(sync_file_range|fsync|rename)\(", traced.stderr)  # each call where it starts
    assert calls == ["sync_file_range"] * 5 + ["fsync", "rename", "fsync"], traced.stderr[-3000:]
    assert len((tmp_path / "run.trec").read_text(encoding="utf-8").splitlines()) == 450


@pytest.mark.parametrize("setting", ["", "/bin/false", "cc-that-is-not-here"])
def test_without_a_compiler_runs_are_formatted_by_arrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, setting: str
) -> None:
    """No compiler (CC empty), one that fails, or one that is not there: the library is None, the log says so once,
    nothing is left in the cache, and the runs are the same bytes."""
    monkeypatch.setenv("CC", setting)
    monkeypatch.setenv(compiled.CACHE_VARIABLE, str(tmp_path / "compiled"))
    compiled._library.cache_clear()
    try:
        with caplog.at_level("INFO", logger="beirflow"):
            assert compiled.library() is None and compiled.library() is None
        assert caplog.text.count("Arrow formats them") == 1
        run = _ordered_run(2)
        written = io.StringIO()
        write_run(written, run, tag="t")
        assert bytes(run_lines(_columns(run), "t")) == written.getvalue().encode("utf-8")
    finally:
        compiled._library.cache_clear()
    assert not list((tmp_path / "compiled").glob("*"))  # no library, no temporary left behind


def test_the_compiled_writer_is_built_once_per_source_into_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "compiled"
    monkeypatch.setenv(compiled.CACHE_VARIABLE, str(folder))
    compiled._library.cache_clear()
    try:
        assert compiled.library() is not None
        built = list(folder.iterdir())
        assert len(built) == 1 and built[0].suffix == ".so"
        stamp = built[0].stat().st_mtime_ns
        compiled._library.cache_clear()
        assert compiled.library() is not None and list(folder.iterdir()) == built and built[0].stat().st_mtime_ns == stamp
    finally:
        compiled._library.cache_clear()


def test_the_check_in_pieces_counts_as_the_line_check_on_runs_across_many_pieces(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    with open(path, "w", encoding="utf-8") as handle:
        write_run(handle, _ordered_run(2), tag="t")
    expected = check_run_file(path)
    for piece_bytes in (1 << 10, 1 << 13, 1 << 24):  # pieces that end inside a query, between queries, the whole file
        assert _check_in_pieces(path, piece_bytes) == expected
    assert check_run_columns(path) == expected


DEFECTS = {
    "a query again after another": lambda lines: lines[:3] + lines[30:32] + lines[3:30] + lines[32:],
    "a rank skipped": lambda lines: [line.replace(" 5 ", " 6 ", 1) if number == 4 else line for number, line in enumerate(lines)],
    "a score that rises": lambda lines: (
        [*lines[:1], lines[2].replace(" 3 ", " 2 ", 1), lines[1].replace(" 2 ", " 3 ", 1), *lines[3:]]
    ),
    "a score that is not a number": lambda lines: [
        " ".join([*line.split()[:4], "nan", line.split()[5]]) + "\n" if number == 7 else line for number, line in enumerate(lines)
    ],
    "five fields": lambda lines: [line.rsplit(" ", 1)[0] + "\n" if number == 9 else line for number, line in enumerate(lines)],
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_every_defect_is_named_by_the_line_check(tmp_path: Path, defect: str) -> None:
    path = tmp_path / "run.trec"
    with open(path, "w", encoding="utf-8") as handle:
        write_run(handle, _ordered_run(3), tag="t")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(DEFECTS[defect](lines)), encoding="utf-8")
    with pytest.raises(DataError) as line_check:
        check_run_file(path)
    for piece_bytes in (1 << 10, 1 << 24):
        assert _check_in_pieces(path, piece_bytes) is None
    with pytest.raises(DataError) as column_check:
        check_run_columns(path)
    assert str(column_check.value) == str(line_check.value)


@pytest.mark.parametrize(
    ("method", "norm"), [("rrf", "min-max"), ("combsum", "min-max"), ("combsum", "max"), ("combmnz", "zmuv")]
)
def test_the_fuse_jobs_file_is_the_fusion_written_line_by_line(tmp_path: Path, method: str, norm: str) -> None:
    rng = np.random.default_rng(4)
    runs = []
    for index in range(3):
        run = {
            f"q{q}": {f"doc{d}": float(rng.integers(0, 4)) / 4 for d in rng.choice(90, 30, replace=False)}
            for q in range(25)
            if q % (index + 2)
        }
        path = tmp_path / f"run{index}.trec"
        with open(path, "w", encoding="utf-8") as handle:
            write_run(handle, {query_id: hits.items() for query_id, hits in run.items()}, tag=f"run{index}")
        subprocess.run([sys.executable, str(REPO / "scripts" / "adopt_file.py"), str(path)], check=True, capture_output=True)
        runs.append(run)
    settings = {"method": method, "norm": norm, "params": {}, "hits": 20}
    output = tmp_path / "fused.trec"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fuse_runs.py"), "--params", json.dumps(settings), "--output", str(output),
         "--provenance", str(tmp_path / "provenance.json"), "--dataset", "d", "--system", "fused", "--", *(str(tmp_path / f"run{index}.trec") for index in range(3))],
        check=True, capture_output=True,
    )  # fmt: skip
    expected = io.StringIO()
    for query_id, hits in fuse_runs(runs, method, norm, {}, k=20).items():
        write_query_hits(expected, query_id, hits.items(), tag="fused")
    assert output.read_text(encoding="utf-8") == expected.getvalue()
    fused_queries = {line.split()[0] for line in expected.getvalue().splitlines()}
    assert (
        json.loads((tmp_path / "provenance.json").read_text(encoding="utf-8"))["queries"] == len(fused_queries) == 22
    )  # all but 0, 12 and 24


def _unordered_run(seed: int, queries: int = 30) -> dict[str, list[tuple[str, float]]]:
    """Hits in no order, scores that tie (a quarter step), ids that sort differently as text and as numbers."""
    rng = np.random.default_rng(seed)
    return {
        f"q{query}": [(f"d{doc}", float(rng.integers(-8, 8)) / 4) for doc in rng.choice(500, 40, replace=False)]
        for query in range(queries)
    }


def test_the_run_writer_writes_the_line_writers_bytes_in_any_batch_size() -> None:
    run = _unordered_run(5)
    expected = io.StringIO()
    for query_id, hits in run.items():
        write_query_hits(expected, query_id, hits, tag="t")
    for hits_at_once in (1, 37, 10_000):
        written = io.BytesIO()
        handle = io.TextIOWrapper(written, encoding="utf-8")
        with RunWriter(handle, "t", hits_at_once) as writer:
            for query_id, hits in run.items():
                writer.add(query_id, hits)
        handle.flush()
        assert written.getvalue().decode("utf-8") == expected.getvalue()


def test_lines_formatted_on_threads_are_written_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of a run formatted side by side, in batches that end inside a query, are the line writer's bytes in the
    line writer's order, whatever piece finishes first; a piece that fails to format stops the writing there."""
    import beirflow.runs.columns as columns

    run = {query_id: ordered_hits(hits) for query_id, hits in _unordered_run(6, queries=40).items()}
    expected = io.StringIO()
    for query_id, hits in run.items():
        write_query_hits(expected, query_id, hits, tag="t")
    rows = [(query_id, doc_id, rank, score) for query_id, hits in run.items() for rank, (doc_id, score) in enumerate(hits, 1)]
    monkeypatch.setattr(columns, "LINES_AT_ONCE", 7)
    monkeypatch.setattr(pa, "cpu_count", lambda: 3)
    written = io.BytesIO()
    handle = io.TextIOWrapper(written, encoding="utf-8")
    with columns.LinesWriter(handle, "t") as lines:
        assert lines.threads == 3
        for start in range(0, len(rows), 150):  # 150 lines a batch: 22 pieces, a query cut in two
            batch = rows[start : start + 150]
            lines.write(
                HitColumns(
                    pa.array([row[0] for row in batch]),
                    pa.array([row[1] for row in batch]),
                    np.array([row[2] for row in batch]),
                    np.array([row[3] for row in batch]),
                )
            )
    assert written.getvalue().decode("utf-8") == expected.getvalue() and len(rows) == 40 * 40
    broken = io.BytesIO()
    broken_handle = io.TextIOWrapper(broken, encoding="utf-8")
    with pytest.raises(ValueError), columns.LinesWriter(broken_handle, "t") as lines:  # Arrow's ArrowInvalid is one
        lines.write(HitColumns(pa.array(["q"] * 20), pa.array(["d"] * 6), np.arange(20), np.zeros(20)))  # its first piece
        lines.close()
    assert broken.getvalue() == b""


def _write(path: Path, run: dict[str, list[tuple[str, float]]]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for query_id, hits in run.items():
            write_query_hits(handle, query_id, hits, tag="t")
    return path


def test_merged_run_files_are_the_line_merge(tmp_path: Path) -> None:
    run = _unordered_run(6)
    queries = list(run)
    by_queries = [_write(tmp_path / f"q{index}.trec", {query: run[query] for query in queries[index::3]}) for index in range(3)]
    by_documents = [_write(tmp_path / f"d{index}.trec", {query: run[query][index::2] for query in queries}) for index in range(2)]
    for paths, k in ((by_queries, None), (by_documents, 25)):
        expected = io.StringIO()
        write_run(
            expected,
            {query_id: hits.items() for query_id, hits in merge_runs((read_run(path) for path in paths), k=k).items()},
            tag="t",
        )
        merged = merged_run_files(paths, k)
        assert merged is not None and bytes(run_lines(merged, "t")).decode("utf-8") == expected.getvalue()
    overlapping = [by_documents[0], _write(tmp_path / "again.trec", {queries[0]: run[queries[0]][:1]})]
    assert merged_run_files(overlapping) is None  # the line merge names the shards that overlap


def test_the_merge_job_writes_query_shards_a_shard_at_a_time_and_any_other_shards_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Query shards are read, sorted and written one after the other (each formatted while the next is read); shards
    that share a query (document shards) are merged whole, after dropping what the shard-at-a-time merge wrote
    before it met the shared query; shards that repeat a document for a query leave the file empty for the line
    merge, which names them. Each is the line merge's text."""
    import beirflow.runs.columns as columns

    merged_at_once: list[int] = []
    whole = columns.merged_run_files
    monkeypatch.setattr(columns, "merged_run_files", lambda paths, k=None: merged_at_once.append(len(paths)) or whole(paths, k))
    run = _unordered_run(7)
    queries = list(run)
    by_queries = [_write(tmp_path / f"q{index}.trec", {query: run[query] for query in queries[index::3]}) for index in range(3)]
    by_documents = [_write(tmp_path / f"d{index}.trec", {query: run[query][index::2] for query in queries}) for index in range(2)]
    for paths, k, read in ((by_queries, None, [1, 1, 1]), (by_documents, None, [1, 1, 2]), (by_documents, 25, [2])):
        merged_at_once.clear()
        expected = io.StringIO()
        write_run(
            expected,
            {query_id: hits.items() for query_id, hits in merge_runs((read_run(path) for path in paths), k=k).items()},
            tag="t",
        )
        output = tmp_path / "merged.trec"
        with open(output, "w", encoding="utf-8") as handle:
            assert columns.write_merged_run_files(handle, paths, "t", k)
        assert output.read_text(encoding="utf-8") == expected.getvalue()
        assert merged_at_once == read
    # more shards before the overlap than the writer formats at once, so some were written before it
    by_queries = [_write(tmp_path / f"q{index}.trec", {query: run[query] for query in queries[index::6]}) for index in range(6)]
    overlapping = [*by_queries, _write(tmp_path / "again.trec", {queries[0]: run[queries[0]][:1]})]
    with open(output, "w", encoding="utf-8") as handle:
        assert not columns.write_merged_run_files(handle, overlapping, "t")
    assert output.stat().st_size == 0
    # a shard the columns cannot read leaves the file empty too, and the shards are not read again whole
    garbled = tmp_path / "garbled.trec"
    garbled.write_text("q-new Q0 d1 1 not-a-score t\n", encoding="utf-8")
    merged_at_once.clear()
    with open(output, "w", encoding="utf-8") as handle:
        assert not columns.write_merged_run_files(handle, [*by_queries, garbled], "t")
    assert output.stat().st_size == 0 and merged_at_once == [1] * 7


@pytest.mark.parametrize("by_rank", [False, True])
def test_a_run_read_in_pieces_with_its_ids_coded_in_groups_is_the_run_read_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_rank: bool
) -> None:
    """The fuse job reads a run 8 MB at a time and codes its document ids four million at a time (MS MARCO's runs are
    7 million hits); in pieces of a kilobyte and groups of 100 ids, every hit's query, document and value, and the
    order in which ids are coded, are those of the line-by-line reader."""
    import beirflow.fusion.fuse as fusion
    from beirflow.runs.table import read_run_table

    path = tmp_path / "run.trec"
    with open(path, "w", encoding="utf-8") as handle:
        write_run(handle, _unordered_run(9, queries=60), tag="run")
    expected_ids = fusion.DocumentIds()
    expected = fusion.RunColumns.of_table(read_run_table(path), expected_ids, by_rank)
    monkeypatch.setattr(fusion, "IDS_CODED_AT_ONCE", 100)
    for piece_bytes in (1 << 10, 1 << 24):
        ids = fusion.DocumentIds()
        read = fusion.RunColumns.read(path, ids, by_rank, piece_bytes)
        assert read.query_ids == expected.query_ids and np.array_equal(read.query_rows, expected.query_rows)
        assert ids.values.equals(expected_ids.values) and np.array_equal(read.doc_codes, expected.doc_codes)
        assert np.array_equal(read.values, expected.values) and len(read.values) == 60 * 40
