"""TREC run files: the one format every stage writes and every evaluation reads.

``qid Q0 docid rank score tag``, hits ordered by score descending then docid ascending (Pyserini's
tie breaker). Scores are written as the shortest decimal that reads back as the same double, not
with Pyserini's six decimals: two monoT5 log-probabilities that differ in the seventh decimal are
different scores, and rounding them would turn them into ties that the evaluation then orders by
document id.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from beirflow.workflow.errors import DataError, rebuild_hint

RunDict = dict[str, dict[str, float]]
RUN_LAYOUT = "qid Q0 docid rank score tag"


def iter_rows(path: Path, layout: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` of a whitespace-separated file whose rows have ``layout``'s fields.

    ``layout`` names the fields ('qid Q0 docid rank score tag'); a row with another count names its line.
    """
    if not path.is_file():
        raise DataError(path, "file not found")
    width = len(layout.split())
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != width:
                raise DataError(path, f"expected {width} fields '{layout}', got {len(fields)}", number)
            yield number, fields


def run_order(hit: tuple[str, float]) -> tuple[float, str]:
    """The sort key of every run beirflow writes: score descending, then docid ascending (Pyserini's).
    The dense search's vectorised top-k is tested against it."""
    return (-hit[1], hit[0])


def trec_eval_order(hits: Mapping[str, float]) -> list[str]:
    """Document ids as trec_eval ranks them: score descending, then docid *descending*. The opposite
    tie order to :func:`run_order` on purpose: the evaluation must rank ties as BEIR's evaluator does."""
    return [doc_id for doc_id, _ in sorted(hits.items(), key=lambda hit: (hit[1], hit[0]), reverse=True)]


def ordered_hits(hits: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    return sorted(hits, key=run_order)


def best_hits(hits: dict[str, float], k: int) -> list[tuple[str, float]]:
    """The ``k`` best hits in run order (score descending, then docid ascending)."""
    return heapq.nsmallest(k, hits.items(), key=run_order)


def format_score(score: float) -> str:
    """The shortest text that reads back as exactly ``score`` (``repr`` of the double)."""
    return repr(float(score))


def write_query_hits(handle: IO[str], query_id: str, hits: Iterable[tuple[str, float]], tag: str) -> None:
    lines = (
        f"{query_id} Q0 {doc_id} {rank} {format_score(score)} {tag}\n"
        for rank, (doc_id, score) in enumerate(ordered_hits(hits), start=1)
    )
    handle.writelines(lines)


def write_run(handle: IO[str], run: Mapping[str, Iterable[tuple[str, float]]], tag: str) -> None:
    for query_id, hits in run.items():
        write_query_hits(handle, query_id, hits, tag)


def read_run(path: Path) -> RunDict:
    """Read a TREC run into ``{qid: {docid: score}}``; malformed lines and repeated hits name their
    line and how to rebuild the file (the workflow wrote it; a hand-edited run is rebuilt the same way)."""
    run: RunDict = {}
    with _naming_the_rebuild(path):
        for number, (query_id, _, doc_id, _, score, _) in iter_rows(path, RUN_LAYOUT):
            _add_hit(path, number, run.setdefault(query_id, {}), query_id, doc_id, score)
    return run


class QueryOrder:
    """Holds a run, row by row, to each query's hits being contiguous, as every run beirflow publishes is
    (:func:`beirflow.runs.checks.check_run_file`); a query found again after others names its line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current: str | None = None
        self.finished: set[str] = set()

    def starts(self, query_id: str, number: int) -> bool:
        """Whether the row on line ``number`` starts ``query_id``'s hits."""
        if query_id == self.current:
            return False
        if query_id in self.finished:
            raise DataError(self.path, f"query '{query_id}' appears again after other queries", number)
        if self.current is not None:
            self.finished.add(self.current)
        self.current = query_id
        return True


def iter_query_hits(path: Path) -> Iterator[tuple[str, dict[str, float]]]:
    """:func:`read_run`'s content a query at a time, holding one query's hits, for a run whose queries'
    hits are contiguous (:class:`QueryOrder`); its errors, like :func:`read_run`'s, name the line and how
    to rebuild the file."""
    order = QueryOrder(path)
    query: str | None = None
    hits: dict[str, float] = {}
    with _naming_the_rebuild(path):
        for number, (query_id, _, doc_id, _, score, _) in iter_rows(path, RUN_LAYOUT):
            if order.starts(query_id, number):
                if query is not None:
                    yield query, hits
                query, hits = query_id, {}
            _add_hit(path, number, hits, query_id, doc_id, score)
        if query is not None:
            yield query, hits


def _add_hit(path: Path, number: int, hits: dict[str, float], query_id: str, doc_id: str, score: str) -> None:
    try:
        value = float(score)
    except ValueError:
        raise DataError(path, f"score '{score}' is not a number", number) from None
    if doc_id in hits:
        raise DataError(path, f"document '{doc_id}' appears twice for query '{query_id}'", number)
    hits[doc_id] = value


@contextmanager
def _naming_the_rebuild(path: Path) -> Iterator[None]:
    try:
        yield
    except DataError as error:
        if not path.is_file():
            raise
        raise DataError(path, f"{error.reason}; {rebuild_hint(path)}", error.line) from None


def merge_runs(runs: Iterable[RunDict], k: int | None = None) -> RunDict:
    """Join shard runs into one: per query, the union of hits, cut to the best ``k``.

    Query shards hold disjoint queries and document shards disjoint documents, so a document
    seen twice for one query means two shards overlap, which is an error.
    """
    merged: RunDict = {}
    for run in runs:
        for query_id, hits in run.items():
            target = merged.setdefault(query_id, {})
            overlap = target.keys() & hits.keys()
            if overlap:
                raise ValueError(f"shards overlap: query '{query_id}' has document '{min(overlap)}' in two shards")
            target.update(hits)
    if k is None:
        return merged
    return {query_id: dict(best_hits(hits, k)) for query_id, hits in merged.items()}
