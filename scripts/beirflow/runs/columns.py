"""Runs of millions of hits written and checked as columns: the same bytes as :func:`beirflow.runs.trec.write_query_hits`
and the same verdicts as :func:`beirflow.runs.checks.check_run_file`, at the speed of the disk and of Arrow's C++
instead of a Python line at a time.

A score is written as ``repr`` of the double (the shortest text that reads back as it). The lines are formatted by
compiled code (:mod:`beirflow.runs.compiled`: Ryu's digits in repr's layout); where no C compiler can build it, by
Arrow's string functions (:func:`arrow_run_lines`), the same bytes. Arrow casts a double to
the same shortest digits, but in its own notation below ``1e-4``, from ``1e9`` and for whole numbers (``12`` where
``repr`` writes ``12.0``): below ``1e-4`` and for whole numbers under ``1e9`` its text is rewritten into repr's by
Arrow's own string functions; the rest, rare in a run, is written by ``repr`` itself.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

import numpy as np

# Where Arrow's text of a double is repr's: both write the shortest digits, each in its own notation. Between 1e-4 and
# 1e9, a number that is not whole reads the same in both; below 1e-4 Arrow writes '0.000025' or '1.5e-7' where repr
# writes '2.5e-05' and '1.5e-07', and a whole number below 1e9 as '12' where repr writes '12.0': those are rewritten
# (tests/test_run_columns.py sweeps the magnitudes). What is left, whole or not from 1e9 on, is written by repr itself.
ARROW_AGREES = (1e-4, 1e9)
SMALL_IN_REPR_NOTATION = (  # (RE2 pattern, rewrite) for Arrow's text of 0 < |x| < 1e-4
    (r"^(-?)0\.0000([1-9])$", r"\1\2e-05"),
    (r"^(-?)0\.0000([1-9])(\d+)$", r"\1\2.\3e-05"),
    (r"^(-?)0\.00000([1-9])$", r"\1\2e-06"),
    (r"^(-?)0\.00000([1-9])(\d+)$", r"\1\2.\3e-06"),
    (r"e-(\d)$", r"e-0\1"),
)


RUN_COLUMNS = ["query", "q0", "doc", "rank", "score", "tag"]
COLUMN_TYPES = {"query": "string", "doc": "string", "rank": "int64", "score": "float64"}
PIECE_BYTES = 1 << 23  # a run file is parsed 8 MB at a time


def run_pieces(path: Path, columns: Sequence[str], piece_bytes: int = PIECE_BYTES) -> Iterator[Any]:
    """A run file's ``columns`` (of ``qid Q0 docid rank score tag``) as Arrow tables, ``piece_bytes`` of the file at
    a time, cut at line ends: Arrow's own streaming reader reads a whole file ahead (the run's size in memory).
    Raises ``pyarrow.ArrowInvalid`` where a line is not six fields between single spaces or a value does not parse."""
    import pyarrow as pa
    import pyarrow.csv as csv

    read = csv.ReadOptions(column_names=RUN_COLUMNS)
    parse = csv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False, escape_char=False)
    convert = csv.ConvertOptions(
        include_columns=list(columns),
        column_types={name: pa.type_for_alias(COLUMN_TYPES[name]) for name in columns},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        null_values=[],
    )
    with open(path, "rb") as handle:
        rest = b""
        while chunk := handle.read(piece_bytes):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            rest, data = data[cut:], data[:cut]
            if data:
                yield csv.read_csv(pa.py_buffer(data), read_options=read, parse_options=parse, convert_options=convert)
        if rest.strip():
            yield csv.read_csv(pa.py_buffer(rest), read_options=read, parse_options=parse, convert_options=convert)


def smallest_int(values: np.ndarray) -> np.ndarray:
    """``values`` (non-negative integers) in the smallest integer type that holds them: a run's columns are held whole."""
    top = int(values.max(initial=0))
    return values.astype(np.int16 if top < 2**15 else np.int32 if top < 2**31 else np.int64)


@dataclass(frozen=True)
class HitColumns:
    """A run's hits as columns, in the order they are written: per hit its query and document id (Arrow
    string arrays), its rank and its score. Each query's hits together, ranked 1, 2, ... in run order."""

    query_ids: Any  # pyarrow string array
    doc_ids: Any  # pyarrow string array
    ranks: np.ndarray  # int64
    scores: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.ranks)


def score_texts(scores: np.ndarray) -> Any:
    """``repr`` of each score, as an Arrow string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    scores = np.ascontiguousarray(scores, dtype=np.float64)
    texts = pc.cast(pa.array(scores, type=pa.float64()), pa.string())
    magnitude = np.abs(scores)
    with np.errstate(invalid="ignore"):
        whole = (scores == np.floor(scores)) & (magnitude < ARROW_AGREES[1])
        small = (magnitude > 0) & (magnitude < ARROW_AGREES[0])
        own = ~(magnitude < ARROW_AGREES[1])  # from 1e9 on, infinities and NaN: below it, Arrow's text or its rewrite
    if small.any():
        rewritten = texts.filter(pa.array(small))
        for pattern, rewrite in SMALL_IN_REPR_NOTATION:
            rewritten = pc.replace_substring_regex(rewritten, pattern=pattern, replacement=rewrite)
        texts = pc.replace_with_mask(texts, pa.array(small), rewritten)
    if whole.any():
        with_point = pc.binary_join_element_wise(texts.filter(pa.array(whole)), ".0", "")
        texts = pc.replace_with_mask(texts, pa.array(whole), with_point)
    if own.any():
        written = pa.array([repr(score) for score in scores[own].tolist()], type=pa.string())
        texts = pc.replace_with_mask(texts, pa.array(own), written)
    return texts


def run_lines(hits: HitColumns, tag: str) -> Any:
    """The run's text, ``qid Q0 docid rank score tag`` a line, as one buffer: formatted by the compiled writer
    (:mod:`beirflow.runs.compiled`), else by Arrow."""
    from beirflow.runs.compiled import compiled_run_lines, library

    compiled = library()
    if compiled is None:
        return arrow_run_lines(hits, tag)
    return compiled_run_lines(compiled, hits.query_ids, hits.doc_ids, hits.ranks, hits.scores, tag)


def arrow_run_lines(hits: HitColumns, tag: str) -> Any:
    """:func:`run_lines` by Arrow's string functions alone, as one Arrow buffer."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(hits) == 0:
        return pa.py_buffer(b"")
    text = pa.large_string()  # 64-bit offsets: a run's text may pass 2 GB
    lines = pc.binary_join_element_wise(
        hits.query_ids.cast(text),
        pa.scalar("Q0", text),
        hits.doc_ids.cast(text),
        pc.cast(pa.array(hits.ranks, type=pa.int64()), text),
        score_texts(hits.scores).cast(text),
        pa.scalar(f"{tag}\n", text),
        pa.scalar(" ", text),
    )
    lines = one_array(lines)
    offsets = string_offsets(lines)
    return lines.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def one_array(values: Any) -> Any:
    """An Arrow array as one array: a ChunkedArray's chunks joined."""
    import pyarrow as pa

    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def string_offsets(strings: Any) -> np.ndarray:
    """A large_string array's offsets into its data buffer, from its own first value to one past its last."""
    return np.frombuffer(strings.buffers()[1], dtype=np.int64)[strings.offset : strings.offset + len(strings) + 1]


@cache
def _writeback() -> Any | None:
    """Linux's ``sync_file_range``: starts writing a file's dirty pages to the disk without waiting for them."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start the writeback of the range's dirty pages, wait for none
LINES_AT_ONCE = 250_000  # lines formatted at once: their text is about 12 MB
FORMATTING_THREADS = 4  # at most: each holds a piece's text (with Arrow, and its temporaries, about 40 MB)


class LinesWriter:
    """Appends runs' lines, as columns come, to a text ``handle`` opened by
    :func:`beirflow.workflow.atomic.atomic_write`, in order. Pieces of :data:`LINES_AT_ONCE` are formatted side by
    side on up to :data:`FORMATTING_THREADS` of Arrow's CPU threads (its kernels let go of the GIL, and its CSV
    reading uses as many), while the caller goes on to its next batch."""

    def __init__(self, handle: IO[str], tag: str) -> None:
        import pyarrow as pa

        handle.flush()  # lines go to the binary buffer beneath
        self.output, self.tag = handle.buffer, tag  # type: ignore[attr-defined]
        self.file, self.writeback = _file_number(self.output), _writeback()
        self.threads = min(pa.cpu_count(), FORMATTING_THREADS)
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self.formatting: deque[Future[Any]] = deque()

    def write(self, hits: HitColumns) -> None:
        for start in range(0, len(hits), LINES_AT_ONCE):
            part = slice(start, start + LINES_AT_ONCE)
            piece = HitColumns(hits.query_ids[part], hits.doc_ids[part], hits.ranks[part], hits.scores[part])
            if self.pool is None:
                self._write(run_lines(piece, self.tag))
                continue
            self.formatting.append(self.pool.submit(run_lines, piece, self.tag))
            while len(self.formatting) > self.threads:
                self._write(self.formatting.popleft().result())

    def _write(self, text: Any) -> None:
        """Writes a piece and has the disk start on it, so that the output's fsync waits for the last piece alone."""
        self.output.write(text)
        if self.file is not None and self.writeback is not None:
            self.output.flush()
            self.writeback(self.file, 0, 0, SYNC_FILE_RANGE_WRITE)

    def close(self) -> None:
        try:
            while self.formatting:
                self._write(self.formatting.popleft().result())
        finally:
            if self.pool is not None:  # a piece that failed leaves the rest unwritten, and no thread behind
                self.pool.shutdown(cancel_futures=True)

    def __enter__(self) -> LinesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        elif self.pool is not None:  # nothing more is written: the caller's atomic write discards the file
            self.pool.shutdown(cancel_futures=True)


def _file_number(output: Any) -> int | None:
    try:
        return int(output.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is both: an in-memory file
        return None


def write_hit_columns(handle: IO[str], hits: HitColumns, tag: str) -> None:
    """Appends the run's lines to a text ``handle`` opened by :func:`beirflow.workflow.atomic.atomic_write`."""
    with LinesWriter(handle, tag) as lines:
        lines.write(hits)


def ranks_from_starts(starts: np.ndarray, rows: int) -> np.ndarray:
    """1, 2, ... from each of ``starts`` (sorted row numbers, the first 0) up to the next: each row's rank in its group."""
    return np.arange(1, rows + 1, dtype=np.int64) - np.repeat(starts, np.diff(np.append(starts, rows)))


def group_starts(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal ``keys`` begins."""
    return np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1]))) if len(keys) else np.zeros(0, np.int64)


def in_run_order(query_rows: np.ndarray, query_ids: Any, doc_ids: Any, scores: np.ndarray) -> HitColumns:
    """Hits (each with its query's row in ``query_ids``) in run order: query by query as the rows number them,
    each query's by score descending, then document id ascending (Arrow compares strings by their UTF-8
    bytes, which is Python's order of str), ranked from 1."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.table(
        {"query": pa.array(query_rows, type=pa.int64()), "score": pa.array(scores, type=pa.float64()), "doc": doc_ids}
    )
    order = pc.sort_indices(table, sort_keys=[("query", "ascending"), ("score", "descending"), ("doc", "ascending")])
    rows = np.asarray(query_rows, dtype=np.int64)[order.to_numpy()]
    ranks = ranks_from_starts(group_starts(rows), len(rows))
    return HitColumns(
        query_ids.take(pa.array(rows)), doc_ids.take(order), ranks, np.asarray(scores, dtype=np.float64)[order.to_numpy()]
    )


def merged_run_files(paths: Sequence[Path], k: int | None = None) -> HitColumns | None:
    """:func:`beirflow.runs.trec.merge_runs` of run files read as columns: per query (in order of first
    appearance) the union of its hits, the best ``k`` in run order. None where a file is not as the columns
    expect or a document repeats for a query (the line-by-line merge then names the line or the shards)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tables = []
    for path in paths:
        if not path.is_file() or path.stat().st_size == 0:
            return None
        try:
            tables += list(run_pieces(path, ["query", "doc", "score"]))
        except pa.ArrowInvalid:
            return None
    table = pa.concat_tables(tables)
    del tables
    queries = table.column("query").combine_chunks().dictionary_encode()
    docs = table.column("doc").combine_chunks().dictionary_encode()
    query_rows = queries.indices.to_numpy().astype(np.int64)
    pairs = np.sort(query_rows * max(len(docs.dictionary), 1) + docs.indices.to_numpy().astype(np.int64))
    if (pairs[1:] == pairs[:-1]).any():
        return None
    del pairs
    hits = in_run_order(query_rows, queries.dictionary, table.column("doc").combine_chunks(), table.column("score").to_numpy())
    if k is None:
        return hits
    kept = hits.ranks <= k
    mask = pa.array(kept)
    return HitColumns(pc.filter(hits.query_ids, mask), pc.filter(hits.doc_ids, mask), hits.ranks[kept], hits.scores[kept])


class _QueryInTwoShards(Exception):
    """A shard holds a query an earlier shard holds too: the shards are merged whole."""


class _NotColumns(Exception):
    """A shard is not as the columns expect, or repeats a document for a query: so are the shards whole."""


def write_merged_run_files(handle: IO[str], paths: Sequence[Path], tag: str, k: int | None = None) -> bool:
    """Writes the lines of :func:`merged_run_files` ``(paths, k)`` to a text ``handle`` opened by
    :func:`beirflow.workflow.atomic.atomic_write`; False, with nothing written, where that is None.

    Query shards (no ``k``, no query in two shards: the rerank jobs' runs) are merged a shard at a time, each
    formatted while the next is read and sorted: the same lines, as each query's hits are all in its shard.
    Where a query turns out to be in two shards, what was written is dropped and the shards are merged whole;
    where a shard cannot be merged as columns, what was written is dropped and nothing more is read."""
    if k is None:
        try:
            with LinesWriter(handle, tag) as lines:
                _write_query_shards(lines, paths)
            return True
        except (_QueryInTwoShards, _NotColumns) as stopped:
            handle.seek(0)
            handle.truncate()
            if isinstance(stopped, _NotColumns):
                return False
    merged = merged_run_files(paths, k)
    if merged is None:
        return False
    write_hit_columns(handle, merged, tag)
    return True


def _write_query_shards(lines: LinesWriter, paths: Sequence[Path]) -> None:
    import pyarrow.compute as pc

    earlier: set[str] = set()
    for path in paths:
        hits = merged_run_files([path])
        if hits is None:
            raise _NotColumns(path)
        queries = set(pc.unique(hits.query_ids).to_pylist())
        if not queries.isdisjoint(earlier):
            raise _QueryInTwoShards(path)
        earlier |= queries
        lines.write(hits)


class RunWriter:
    """Writes a run a query at a time as :func:`beirflow.runs.trec.write_query_hits` would, the same bytes, but
    sorts the hits as columns, ``hits_at_once`` at a time, and formats them through one :class:`LinesWriter` while
    the caller searches on."""

    def __init__(self, handle: IO[str], tag: str, hits_at_once: int = 500_000) -> None:
        self.lines, self.hits_at_once = LinesWriter(handle, tag), hits_at_once
        self.query_ids: list[str] = []
        self.query_rows: list[int] = []
        self.doc_ids: list[str] = []
        self.scores: list[float] = []
        self.queries = 0

    def add(self, query_id: str, hits: Any) -> None:
        """One query's hits, (document id, score) pairs in any order."""
        before = len(self.doc_ids)
        for doc_id, score in hits:
            self.doc_ids.append(doc_id)
            self.scores.append(score)
        self.query_rows.extend([len(self.query_ids)] * (len(self.doc_ids) - before))
        self.query_ids.append(query_id)
        self.queries += 1
        if len(self.doc_ids) >= self.hits_at_once:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.doc_ids:
            hits = in_run_order(
                np.array(self.query_rows, dtype=np.int64),
                pa.array(self.query_ids, type=pa.string()),
                pa.array(self.doc_ids, type=pa.string()),
                np.array(self.scores, dtype=np.float64),
            )
            self.lines.write(hits)
        self.query_ids, self.query_rows, self.doc_ids, self.scores = [], [], [], []

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.flush()
        finally:
            self.lines.__exit__(*exc)  # writes what is pending, or after a failure leaves no thread behind


def check_run_columns(path: Path) -> dict[str, int]:
    """:func:`beirflow.runs.checks.check_run_file` of a run read by Arrow in blocks (a block's columns at a time,
    so memory does not grow with the run). A run that is not as the columns expect (not six fields between
    single spaces, a rank or score Arrow cannot read, any defect the check names) is checked line by line
    instead, whose error names the line."""
    from beirflow.runs.checks import check_run_file

    counts = _check_in_pieces(path)
    return counts if counts is not None else check_run_file(path)


def _check_in_pieces(path: Path, piece_bytes: int = PIECE_BYTES) -> dict[str, int] | None:
    """The run's counts if every piece of it passes, None at the first doubt."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not path.is_file() or path.stat().st_size == 0:
        return None
    finished: set[str] = set()
    current, rank, score, hits = None, 0, np.inf, 0
    try:
        for piece in run_pieces(path, ["query", "rank", "score"], piece_bytes):
            if piece.num_rows == 0:
                continue
            queries = piece.column("query").combine_chunks()
            ranks, scores = piece.column("rank").to_numpy(), piece.column("score").to_numpy()
            if not np.isfinite(scores).all():
                return None
            new = np.ones(len(ranks), dtype=bool)
            new[1:] = pc.not_equal(queries[1:], queries[:-1]).to_numpy(zero_copy_only=False)
            new[0] = queries[0].as_py() != current
            starts = np.flatnonzero(new)
            for query_id in queries.take(pa.array(starts)).to_pylist():  # each query that starts here
                if query_id in finished:
                    return None
                if current is not None:
                    finished.add(current)
                current = query_id
            # ranks 1, 2, ... from each start; a piece that starts within a query goes on from the last rank
            segments = starts if new[0] else np.concatenate(([0], starts))
            expected = ranks_from_starts(segments, len(ranks))
            if not new[0]:
                expected[: starts[0] if len(starts) else len(ranks)] += rank
            previous = np.concatenate(([score if not new[0] else np.inf], scores[:-1]))
            previous[new] = np.inf
            if not np.array_equal(ranks, expected) or (scores > previous).any():
                return None
            rank, score, hits = int(expected[-1]), float(scores[-1]), hits + len(ranks)
    except pa.ArrowInvalid:
        return None
    return {"queries": len(finished) + (current is not None), "hits": hits}
