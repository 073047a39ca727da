"""Runs of millions of hits written and checked as columns: the same bytes as :func:`beirflow.runs.trec.write_query_hits`
and the same verdicts as :func:`beirflow.runs.checks.check_run_file`, at the speed of Arrow's C++ instead of a
Python line at a time.

A score is written as ``repr`` of the double (the shortest text that reads back as it). Arrow casts a double to
the same shortest digits, but in its own notation outside ``[1e-4, 1e9)`` and for integral values (``12`` where
``repr`` writes ``12.0``); those scores, rare in a run, are written by ``repr`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

# Where Arrow's text of a non-integral double is repr's (tests/test_run_columns.py sweeps the magnitudes).
ARROW_AGREES = (1e-4, 1e9)


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
        own = ~((magnitude >= ARROW_AGREES[0]) & (magnitude < ARROW_AGREES[1]) & (scores != np.floor(scores)))
    if not own.any():
        return texts
    written = pa.array([repr(score) for score in scores[own].tolist()], type=pa.string())
    return pc.replace_with_mask(texts, pa.array(own), written)


def run_lines(hits: HitColumns, tag: str) -> Any:
    """The run's text, ``qid Q0 docid rank score tag`` a line, as one Arrow buffer."""
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
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return lines.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def write_hit_columns(handle: IO[str], hits: HitColumns, tag: str) -> None:
    """Appends the run's lines to a text ``handle`` opened by :func:`beirflow.workflow.atomic.atomic_write`."""
    handle.flush()
    handle.buffer.write(run_lines(hits, tag))  # type: ignore[attr-defined]


def check_run_columns(path: Path) -> dict[str, int]:
    """:func:`beirflow.runs.checks.check_run_file` of a run read by Arrow in blocks (a block's columns at a time,
    so memory does not grow with the run). A run that is not as the columns expect (not six fields between
    single spaces, a rank or score Arrow cannot read, any defect the check names) is checked line by line
    instead, whose error names the line."""
    from beirflow.runs.checks import check_run_file

    counts = _check_in_blocks(path)
    return counts if counts is not None else check_run_file(path)


def _check_in_blocks(path: Path, block_size: int = 1 << 24) -> dict[str, int] | None:
    """The run's counts if every block passes, None at the first doubt."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv

    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        reader = csv.open_csv(
            path,
            read_options=csv.ReadOptions(column_names=["query", "q0", "doc", "rank", "score", "tag"], block_size=block_size),
            parse_options=csv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False, escape_char=False),
            convert_options=csv.ConvertOptions(
                include_columns=["query", "rank", "score"],
                column_types={"query": pa.string(), "rank": pa.int64(), "score": pa.float64()},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
            ),
        )
        finished: set[str] = set()
        current, rank, score, hits = None, 0, np.inf, 0
        for batch in reader:
            if batch.num_rows == 0:
                continue
            queries, ranks, scores = batch.column("query"), batch.column("rank").to_numpy(), batch.column("score").to_numpy()
            if not np.isfinite(scores).all():
                return None
            new = np.ones(len(ranks), dtype=bool)
            new[1:] = pc.not_equal(queries[1:], queries[:-1]).to_numpy(zero_copy_only=False)
            first = queries[0].as_py()
            new[0] = first != current
            starts = np.flatnonzero(new)
            for query_id in queries.take(pa.array(starts)).to_pylist():  # each query that starts here
                if query_id in finished:
                    return None
                if current is not None:
                    finished.add(current)
                current = query_id
            # ranks 1, 2, ... from each start; a block that starts within a query goes on from the last rank
            segments = starts if new[0] else np.concatenate(([0], starts))
            expected = np.arange(len(ranks)) - np.repeat(segments, np.diff(np.append(segments, len(ranks)))) + 1
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
