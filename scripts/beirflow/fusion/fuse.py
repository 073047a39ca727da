"""Fusion of runs: RRF and ranx's unsupervised methods, each computed here as ranx computes it, to the bit (in NumPy;
Condorcet in compiled code, :mod:`beirflow.fusion.condorcet`), and by ranx itself where that cannot be matched.

ranx's ``fuse`` wants every run to hold the same queries; a first stage can miss a query (BM25 finds
nothing for a query of stopwords), so queries are fused over the runs that hold them, and a query
only one run holds keeps that run's order under the method's scores.

Runs of millions of hits (MS MARCO dev: 7,000 queries x 1,000 hits) are held as a few integers a hit
(:class:`RunColumns`), fused a batch of queries at a time and written as each batch is done, so the
fused run never exists whole in memory.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from beirflow.fusion.methods import METHODS, RANK_METHODS, RANK_NORMS, parameter_problem
from beirflow.runs.columns import PIECE_BYTES, HitColumns, group_starts, ranks_from_starts, run_pieces, smallest_int
from beirflow.runs.table import RunTable
from beirflow.runs.trec import RunDict

# Queries and documents reach ranx as numbered keys of one width (``ranx_arrays.keys``). ranx stores a
# run's ids as a NumPy array of dtype '<U{longest id}', and numba compiles its code once per such dtype:
# with the real ids every dataset (and every run of another longest id) compiled ranx's fusion anew,
# 13 to 26 s of CPU a job, where the cached code takes none.

# A run's document ids are coded this many at a time: their text and Arrow's hash of them are most of what reading
# a run holds, and each coding costs a hash of the ids seen (about 0.1 s at a million).
IDS_CODED_AT_ONCE = 4_000_000
HITS_AT_ONCE = 500_000  # hits of all runs fused in one batch of queries (RRF and the methods in NumPy)


class DocumentIds:
    """The document ids of every run, each coded once (in order of first reading), and their sorted order:
    a document's place among the sorted ids (Arrow's order, by UTF-8 bytes, which is Python's order of
    str) orders ties as run files do and is its key for ranx."""

    def __init__(self) -> None:
        import pyarrow as pa

        self.values = pa.array([], type=pa.string())
        self._order: np.ndarray | None = None
        self._places: np.ndarray | None = None

    def codes(self, distinct: Any) -> np.ndarray:
        """The codes of ``distinct`` ids (an Arrow string array), new ones coded after those seen."""
        import pyarrow as pa
        import pyarrow.compute as pc

        found = pc.index_in(distinct, value_set=self.values)
        missing = found.is_null().to_numpy(zero_copy_only=False)
        codes = found.to_numpy(zero_copy_only=False)
        codes = np.where(missing, 0, np.nan_to_num(codes)).astype(np.int64)
        if missing.any():
            codes[missing] = len(self.values) + np.arange(int(missing.sum()))
            self.values = pa.concat_arrays([self.values, distinct.filter(pa.array(missing))])
            self._order = self._places = None
        return codes

    def rows(self, chunks: list[Any]) -> np.ndarray:
        """Each id of ``chunks`` (Arrow string arrays, a run's document column in pieces) as its code (int32)."""
        import pyarrow as pa

        if not chunks:
            return np.zeros(0, dtype=np.int32)
        encoded = pa.chunked_array(chunks, type=pa.string()).combine_chunks().dictionary_encode()
        return self.codes(encoded.dictionary).astype(np.int32)[encoded.indices.to_numpy()]

    @property
    def order(self) -> np.ndarray:
        """The coded ids' order: the codes of the ids sorted (sorted once per set of ids)."""
        import pyarrow.compute as pc

        if self._order is None:
            self._order = pc.sort_indices(self.values).to_numpy().astype(np.int64)
        return self._order

    @property
    def places(self) -> np.ndarray:
        """Per code, its place among the sorted ids."""
        if self._places is None:
            order = self.order
            self._places = np.empty(len(order), dtype=np.int64)
            self._places[order] = np.arange(len(order))
        return self._places

    def sorted_ids(self) -> Any:
        import pyarrow as pa

        return self.values.take(pa.array(self.order))


@dataclass(frozen=True)
class RunColumns:
    """One run as a method needs it, a hit a row: its query (a place in ``query_ids``), its document's code
    (:class:`DocumentIds`) and its rank as written or its score."""

    query_ids: list[str]  # distinct, in order of first appearance
    query_rows: np.ndarray  # the smallest integer type that holds them
    doc_codes: np.ndarray  # int32
    values: np.ndarray  # ranks (the smallest integer type) or scores (float64), as ``by_rank`` asked
    path: Path | None = None  # the file read, which names a repeated hit's line

    @classmethod
    def of_table(cls, table: RunTable, documents: DocumentIds, by_rank: bool) -> RunColumns:
        import pyarrow as pa

        codes = documents.codes(pa.array(table.doc_ids, type=pa.string()))
        values = table.ranks.astype(np.int32) if by_rank else table.scores.astype(np.float64)
        return cls(list(table.query_ids), table.query_rows.astype(np.int32), codes[table.doc_rows].astype(np.int32), values)

    @classmethod
    def read(cls, path: Path, documents: DocumentIds, by_rank: bool, piece_bytes: int = PIECE_BYTES) -> RunColumns:
        """A run file read by Arrow a piece at a time; one Arrow cannot read as beirflow writes runs is read line
        by line (:func:`beirflow.runs.table.read_run_table`), whose errors name the line."""
        import pyarrow as pa

        from beirflow.runs.table import read_run_table

        value = "rank" if by_rank else "score"
        query_number: dict[str, int] = {}  # in order of first appearance
        query_rows, doc_rows, values, docs = [], [], [], []
        try:
            if not path.is_file() or path.stat().st_size == 0:
                raise pa.ArrowInvalid("empty")
            for piece in run_pieces(path, ["query", "doc", value], piece_bytes):
                encoded = piece.column("query").combine_chunks().dictionary_encode()
                numbers = np.array(
                    [query_number.setdefault(query, len(query_number)) for query in encoded.dictionary.to_pylist()],
                    dtype=np.int32,
                )
                query_rows.append(numbers[encoded.indices.to_numpy()] if len(numbers) else np.zeros(0, np.int32))
                docs += piece.column("doc").chunks
                values.append(piece.column(value).to_numpy())
                if sum(map(len, docs)) >= IDS_CODED_AT_ONCE:
                    doc_rows.append(documents.rows(docs))
                    docs = []
        except pa.ArrowInvalid:
            return cls.of_table(read_run_table(path), documents, by_rank)
        doc_rows.append(documents.rows(docs))
        del docs
        pa.default_memory_pool().release_unused()  # what reading freed (about 0.2 GB), kept by Arrow's allocator
        merged = np.concatenate(values)
        if not by_rank and np.isnan(merged).any():
            return cls.of_table(read_run_table(path), documents, by_rank)  # names the line
        held = smallest_int(merged) if by_rank and merged.min(initial=0) >= 0 else merged
        return cls(list(query_number), smallest_int(np.concatenate(query_rows)), np.concatenate(doc_rows), held, path)


class QueryHits:
    """One run's hits per query, read off its columns a query at a time, as places among all ids."""

    def __init__(self, run: RunColumns, documents: DocumentIds) -> None:
        grouped = bool(np.all(run.query_rows[1:] >= run.query_rows[:-1]))  # each query's hits together, as written
        self.order = None if grouped else np.argsort(run.query_rows, kind="stable")  # file order within a query
        query_rows = run.query_rows if self.order is None else run.query_rows[self.order]
        bounds = np.searchsorted(query_rows, np.arange(len(run.query_ids) + 1))
        self.slices = {query_id: (int(bounds[row]), int(bounds[row + 1])) for row, query_id in enumerate(run.query_ids)}
        self.run, self.documents = run, documents

    def holds(self, query_id: str) -> bool:
        start, stop = self.slices.get(query_id, (0, 0))
        return stop > start

    def rows(self, query_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``query_ids``' hits in file order, query after query, and the bounds of each query's."""
        spans = [self.slices.get(query_id, (0, 0)) for query_id in query_ids]
        lengths = np.array([stop - start for start, stop in spans], dtype=np.int64)
        starts = np.array([start for start, _ in spans], dtype=np.int64)
        bounds = np.concatenate(([0], np.cumsum(lengths)))
        rows = np.repeat(starts - bounds[:-1], lengths) + np.arange(int(bounds[-1]), dtype=np.int64)
        return (rows if self.order is None else self.order[rows]), bounds

    def columns(
        self, query_ids: Sequence[str], by_rank: bool = False, raw: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The hits of ``query_ids`` in file order, query after query: the bounds of each query's hits,
        their documents' places and their scores (``by_rank``: minus their ranks as written, so that ranx
        ranks them as the file does; ``raw``: the run's values as held)."""
        rows, bounds = self.rows(query_ids)
        places = self.documents.places[self.run.doc_codes[rows]]
        if raw:
            return bounds, places, self.run.values[rows]
        values = self.run.values[rows].astype(np.float64)
        return bounds, places, -values if by_rank else values


def fuse_files(
    paths: Sequence[Path], method: str, norm: str | None = "min-max", params: dict[str, Any] | None = None, k: int = 1000
) -> Iterator[HitColumns]:
    """:func:`fuse_tables` of run files, read as :class:`RunColumns`."""
    documents = DocumentIds()
    by_rank = _by_rank(method, norm)
    yield from _fuse([RunColumns.read(path, documents, by_rank) for path in paths], documents, method, norm, params, k)


def fuse_tables(
    tables: Sequence[RunTable],
    method: str,
    norm: str | None = "min-max",
    params: dict[str, Any] | None = None,
    k: int = 1000,
    queries_at_once: int = 100,
) -> Iterator[HitColumns]:
    """Each query's fused best ``k`` hits (score descending, then document id), as columns, a batch of
    queries at a time in the order they are written.

    ranx sees ``queries_at_once`` queries at a time: its runs take about 1 KB a hit. Every normalisation
    and method here works query by query, so the result is the same as fusing at once."""
    documents = DocumentIds()
    by_rank = _by_rank(method, norm)
    yield from _fuse(
        [RunColumns.of_table(table, documents, by_rank) for table in tables], documents, method, norm, params, k, queries_at_once
    )


def _by_rank(method: str, norm: str | None) -> bool:
    if method not in METHODS:
        raise ValueError(f"unknown fusion method '{method}' ({', '.join(METHODS)})")
    return method in RANK_METHODS or norm in RANK_NORMS


def _fuse(
    runs: list[RunColumns],
    documents: DocumentIds,
    method: str,
    norm: str | None,
    params: dict[str, Any] | None,
    k: int,
    queries_at_once: int = 100,
) -> Iterator[HitColumns]:
    problem = parameter_problem(method, dict(params or {}), len(runs))
    if problem:
        raise ValueError(problem)
    all_queries = list(dict.fromkeys(query_id for run in runs for query_id in run.query_ids))
    hits = [QueryHits(run, documents) for run in runs]
    sorted_ids = documents.sorted_ids()
    if method == "rrf":
        batches = reciprocal_rank_fusion(hits, all_queries, float((params or {}).get("k", 60)))
    elif _native(method, norm, runs):
        batches = native_fusion(hits, all_queries, method, norm, params)
    else:
        batches = ranx_fusion(hits, all_queries, len(sorted_ids), method, norm, params, queries_at_once)
    for query_ids, queries, places, scores in batches:
        yield best_hits_columns(query_ids, sorted_ids, queries, places, scores, k)


Batch = tuple[
    list[str], np.ndarray, np.ndarray, np.ndarray
]  # query ids; per hit its query's place among them, its document's place, its score


def _by_members(hits: Sequence[QueryHits], all_queries: list[str]) -> dict[tuple[int, ...], list[int]]:
    """The queries' numbers grouped by the runs that hold them, as ranx fuses them (ranx wants every run to hold
    every query it fuses), groups in order of their first query."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for number, query_id in enumerate(all_queries):
        groups[tuple(index for index, run in enumerate(hits) if run.holds(query_id))].append(number)
    return groups


def _query_batches(hits: Sequence[QueryHits], queries: list[str]) -> Iterator[list[str]]:
    """``queries`` in order, about ``HITS_AT_ONCE`` hits of all runs at a time."""
    per_query = sum(len(run.run.query_rows) for run in hits) / max(len(queries), 1)
    at_once = max(1, int(HITS_AT_ONCE / max(per_query, 1)))
    for start in range(0, len(queries), at_once):
        yield queries[start : start + at_once]


@dataclass
class RunValues:
    """One run's part of a batch: where each of its hits' (query, document) keys is among the batch's, its value,
    and how many hits the run holds for each query of the batch."""

    rows: np.ndarray
    values: np.ndarray
    lengths: np.ndarray


def _keyed(
    hits: Sequence[QueryHits], query_ids: list[str], value_of: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, list[RunValues]]:
    """The batch's distinct (query, document) keys (query's place in ``query_ids`` times the documents, plus the
    document's place), and per run, in the runs' order, its :class:`RunValues`, each hit's value
    ``value_of(bounds, query of each hit, run value of each hit)``. A repeated hit in a run is refused."""
    documents = max(len(hits[0].documents.places), 1)
    keys, values, owners, lengths = [], [], [], []
    for index, run in enumerate(hits):
        bounds, places, raw = run.columns(query_ids, raw=True)
        lengths.append(np.diff(bounds))
        query_of_hit = np.repeat(np.arange(len(query_ids), dtype=np.int64), lengths[-1])
        keys.append(query_of_hit * documents + places)
        values.append(value_of(bounds, query_of_hit, raw))
        owners.append(np.full(len(places), index, dtype=np.int64))
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    inverse, owner = inverse.reshape(-1), np.concatenate(owners)
    _refuse_repeated_hits(hits, inverse, owner, len(unique))
    return unique, [RunValues(inverse[owner == index], value, lengths[index]) for index, value in enumerate(values)]


def reciprocal_rank_fusion(hits: Sequence[QueryHits], all_queries: list[str], rrf_k: float) -> Iterator[Batch]:
    """RRF as Cormack et al. and ``pyserini.fusion`` define it: a document's score is the sum, over the
    runs holding it, of ``1 / (rrf_k + its rank as written)``, added in the runs' order. Queries in order
    of first appearance."""
    documents = max(len(hits[0].documents.places), 1) if hits else 1
    for query_ids in _query_batches(hits, all_queries):
        unique, per_run = _keyed(hits, query_ids, lambda bounds, queries, ranks: 1.0 / (rrf_k + ranks.astype(np.float64)))
        rows = np.concatenate([run.rows for run in per_run])
        scores = np.bincount(rows, weights=np.concatenate([run.values for run in per_run]), minlength=len(unique))
        yield query_ids, unique // documents, unique % documents, scores


# These methods and normalisations are computed here with ranx's float operations in ranx's order
# (ranx/normalization/*.py, ranx/fusion/comb_*.py, wsum.py, wmnz.py, isr.py, log_isr.py, logn_isr.py, rbc.py,
# bordafuse.py: each hit's normalised score or its place's value, combined over the runs in their order as
# ranx's loops combine them; its sums in its order, numba's median and integer power, C's log and pow), so the
# fused run is ranx's to the bit (tests/test_dense.py compares them); Condorcet replays ranx's sort
# (beirflow.fusion.condorcet). ranx itself fuses a run whose query holds a rank twice, where a method or norm reads
# places (its unstable sort orders them), and Condorcet on a Python whose sort the replay is not.
NATIVE_NORMS = (None, "min-max", "max", "sum", "zmuv", "rank", "borda")
PLACE_METHODS = frozenset({"isr", "log_isr", "logn_isr", "rbc", "bordafuse", "condorcet"})  # a hit's value: its place
NATIVE_METHODS = frozenset(
    {"combsum", "combmnz", "combanz", "combmax", "combmin", "combmed", "combgmnz", "wsum", "wmnz"} | PLACE_METHODS
)


def _native(method: str, norm: str | None, runs: Sequence[RunColumns]) -> bool:
    if method not in NATIVE_METHODS or norm not in NATIVE_NORMS:
        return False
    if method == "condorcet":
        from beirflow.fusion.condorcet import REPLAYS_THIS_PYTHON  # it imports numba, 60 MB the other methods need not hold

        if not REPLAYS_THIS_PYTHON:
            return False
    return not _by_rank(method, norm) or all(map(distinct_ranks, runs))


def native_fusion(
    hits: Sequence[QueryHits], all_queries: list[str], method: str, norm: str | None, params: dict[str, Any] | None
) -> Iterator[Batch]:
    """A method combining each run's normalised scores (or its hits' places) per query, the queries in the order
    ranx's path fuses them: grouped by the runs that hold them."""
    documents = max(len(hits[0].documents.places), 1) if hits else 1
    params = dict(params or {})
    params.setdefault("weights", [1.0] * len(hits))
    value_of = _places if method in PLACE_METHODS else partial(_normalised, norm=norm)
    ordered = [all_queries[number] for numbers in _by_members(hits, all_queries).values() for number in numbers]
    for query_ids in _query_batches(hits, ordered):
        unique, per_run = _keyed(hits, query_ids, value_of)
        query_of_key = unique // documents
        candidates = np.bincount(query_of_key, minlength=len(query_ids))  # per query, the documents of its runs
        if norm == "borda" and method in PLACE_METHODS:
            per_run = _borda_places(per_run, query_of_key, candidates)
        elif norm == "borda":
            per_run = [_borda_normalised(run, query_of_key, candidates) for run in per_run]
        scores = _combined(method, per_run, params, query_of_key, candidates)
        yield query_ids, query_of_key, unique % documents, scores


def _first_appearance(per_run: list[RunValues], query_of_key: np.ndarray) -> np.ndarray:
    """The keys in ranx's order of a query's candidates (its ``get_candidates`` as :func:`patch_ranx_candidates`
    makes it): query by query, each run's hits by place, run after run, a key where it first appears."""
    seen = np.zeros(len(query_of_key), dtype=bool)
    firsts = []
    for run in per_run:
        rows = run.rows
        if not _sorted_by(query_of_key[rows], run.values):  # they are as beirflow writes runs
            rows = rows[np.lexsort((run.values, query_of_key[rows]))]
        firsts.append(rows[~seen[rows]])
        seen[rows] = True
    kept = np.concatenate(firsts)
    return kept[np.argsort(smallest_int(query_of_key[kept]), kind="stable")]  # by query, each run's part in turn


def _borda_places(per_run: list[RunValues], query_of_key: np.ndarray, candidates: np.ndarray) -> list[RunValues]:
    """The runs' places after ranx's borda norm: a run then holds every candidate of each query it holds, listed in
    the order of candidates (``_borda_norm`` fills its dict in that order), and a method that reads places reads
    that order, the same in every run."""
    order = _first_appearance(per_run, query_of_key)
    starts = np.concatenate(([0], np.cumsum(candidates)[:-1]))
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order)) - starts[query_of_key[order]]
    every = [np.flatnonzero(run.lengths[query_of_key] > 0) for run in per_run]
    return [RunValues(keys, place[keys], run.lengths) for keys, run in zip(every, per_run, strict=True)]


def _places(bounds: np.ndarray, query_of_hit: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Each hit's place (from 0) among its query's hits as ranx holds them: by rank as written (ranx sorts a run by
    score, and it is given minus the ranks; a query's ranks are distinct: :func:`distinct_ranks`). A normalisation
    other than borda before it changes no place."""
    in_rank_order = _ascending_within(query_of_hit, ranks)  # as beirflow writes runs: no sort needed
    order = np.arange(len(ranks)) if in_rank_order else np.lexsort((ranks, query_of_hit))
    places = np.empty(len(ranks), dtype=np.int64)
    places[order] = np.arange(len(ranks), dtype=np.int64) - bounds[:-1][query_of_hit[order]]
    return places


def _sorted_by(groups: np.ndarray, values: np.ndarray) -> bool:
    """Whether the rows are in order of ``groups``, then of ``values``, which rise strictly within a group."""
    return bool(np.all(groups[1:] >= groups[:-1])) and _ascending_within(groups, values)


def _ascending_within(groups: np.ndarray, values: np.ndarray) -> bool:
    """Whether ``values`` rise strictly within each run of equal ``groups``."""
    return bool(np.all((groups[1:] != groups[:-1]) | (values[1:] > values[:-1])))


def distinct_ranks(run: RunColumns) -> bool:
    """Whether no query of ``run`` holds one rank twice: where one does, ranx's place for each (its unstable sort)
    is ranx's own, and a method or norm that reads places runs in ranx."""
    if _sorted_by(run.query_rows, run.values):  # queries numbered as they first appear, ranks rising: as beirflow writes
        return True
    order = np.lexsort((run.values, run.query_rows))
    rows, ranks = run.query_rows[order], run.values[order]
    return not bool(np.any((rows[1:] == rows[:-1]) & (ranks[1:] == ranks[:-1])))


def _combined(
    method: str, per_run: list[RunValues], params: dict[str, Any], query_of_key: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """Per document, its runs' values combined as ranx's loop combines them, run after run."""
    size = len(query_of_key)
    if method in ("combmax", "combmin"):  # Python's max/min of a list: the first value no later one beats
        missing = -1e9 if method == "combmax" else 1e9
        result = np.full(size, missing)
        for index, run in enumerate(per_run):
            item = np.full(size, missing)
            item[run.rows] = run.values
            result = item if index == 0 else np.where(item > result if method == "combmax" else item < result, item, result)
        return result
    if method == "combmed":
        return _median(per_run, size)
    if method == "condorcet":
        from beirflow.fusion.condorcet import condorcet_scores

        held = np.array([run.lengths > 0 for run in per_run]).reshape(len(per_run), len(candidates))
        order = _first_appearance(per_run, query_of_key)
        return condorcet_scores([run.rows for run in per_run], [run.values for run in per_run], held, order, query_of_key)
    if method in PLACE_METHODS:
        per_run = [RunValues(run.rows, _place_values(method, run, params), run.lengths) for run in per_run]
        if method == "bordafuse":  # a run's unranked candidates get its unranked points
            per_run = [_with_unranked(run, query_of_key, candidates) for run in per_run]
    weights = [float(weight) for weight in params["weights"]]
    total = np.zeros(size)  # sum() from 0: the runs that miss a document add nothing
    weight_total = np.zeros(size)
    count = np.zeros(size, dtype=np.int64)
    for index, run in enumerate(per_run):
        total[run.rows] += weights[index] * run.values if method == "wsum" else run.values
        weight_total[run.rows] += weights[index]
        count[run.rows] += 1
    counts = range(len(per_run) + 1)
    if method in ("combmnz", "isr"):
        return total * count
    if method == "combanz":
        return total / count
    if method == "wmnz":
        return total * weight_total
    if method == "log_isr":
        return total * np.array([math.log(held) if held else 0.0 for held in counts])[count]
    if method == "logn_isr":
        sigma = float(params.get("sigma", 0.01))  # ranx's default
        return total * np.array([math.log(held + sigma) for held in counts])[count]
    if method == "combgmnz":
        return total * np.array([held ** float(params["gamma"]) for held in counts])[count]
    return total  # combsum, wsum, rbc, bordafuse


def _place_values(method: str, run: RunValues, params: dict[str, Any]) -> np.ndarray:
    """A place's value: ISR's ``1 / (i + 1) ** 2``, RBC's ``(1 - phi) * phi ** i`` (numba's power of an integer
    exponent: by squaring), BordaFuse's place itself (its points need the candidates)."""
    places = run.values
    if method == "rbc":
        phi = float(params["phi"])
        return (1 - phi) * _power_by_squaring(phi, places)
    if method == "bordafuse":
        return places
    return 1 / (places + 1) ** 2


def _power_by_squaring(base: float, exponents: np.ndarray) -> np.ndarray:
    """numba's ``base ** exponent`` for an integer exponent: ``r *= a`` for each bit set, ``a *= a`` for each bit;
    C's pow past 65,536, as numba does."""
    result, square, remaining = np.ones(len(exponents)), base, exponents.astype(np.int64)
    while remaining.any():
        result = np.where(remaining & 1 == 1, result * square, result)
        remaining = remaining >> 1
        square = square * square
    large = exponents > 0x10000
    result[large] = [math.pow(base, float(exponent)) for exponent in exponents[large].tolist()]
    return result


def _with_unranked(run: RunValues, query_of_key: np.ndarray, candidates: np.ndarray) -> RunValues:
    """ranx's ``_borda_score``: a ranked document ``candidates - place`` points, each other candidate of a query the
    run holds ``(candidates - the run's hits + 1) / 2``."""
    ranked = candidates[query_of_key[run.rows]] - run.values
    return _every_candidate(run, query_of_key, candidates, ranked, lambda hits, among: (among - hits + 1) / 2)


def _borda_normalised(run: RunValues, query_of_key: np.ndarray, candidates: np.ndarray) -> RunValues:
    """ranx's ``_borda_norm``: a ranked document ``1 - place / candidates``, each other candidate of a query the run
    holds ``0.5 - (the run's hits - 1) / (2 * candidates)``."""
    ranked = 1 - run.values / candidates[query_of_key[run.rows]]
    return _every_candidate(run, query_of_key, candidates, ranked, lambda hits, among: 0.5 - ((hits - 1) / (2 * among)))


def _every_candidate(
    run: RunValues,
    query_of_key: np.ndarray,
    candidates: np.ndarray,
    ranked: np.ndarray,
    unranked: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> RunValues:
    """``run`` with a value for every candidate of each query it holds: ``ranked`` for its own hits, and for each
    other candidate ``unranked(the run's hits for the query, the query's candidates)``."""
    held = run.lengths[query_of_key] > 0
    held[run.rows] = False
    others = np.flatnonzero(held)
    queries = query_of_key[others]
    points = unranked(run.lengths[queries], candidates[queries])
    return RunValues(np.concatenate([run.rows, others]), np.concatenate([ranked, points]), run.lengths)


def _median(per_run: list[RunValues], size: int) -> np.ndarray:
    """numba's ``np.median`` of each document's values: the middle one, or the two middle ones' ``(a + b) / 2``."""
    values = np.full((size, len(per_run)), np.inf)
    for index, run in enumerate(per_run):
        values[run.rows, index] = run.values
    values.sort(axis=1)  # the runs that miss a document last
    count = np.bincount(np.concatenate([run.rows for run in per_run]), minlength=size)
    rows = np.arange(size)
    middle = values[rows, count // 2]
    lower = values[rows, np.maximum(count // 2 - 1, 0)]
    return np.where(count % 2 == 1, middle, (lower + middle) / 2)


def _normalised(bounds: np.ndarray, query_of_hit: np.ndarray, values: np.ndarray, norm: str | None) -> np.ndarray:
    """Each hit's score normalised over its query's hits in its run (ranx's ``_min_max_norm``, ``_max_norm``,
    ``_sum_norm``, ``_zmuv_norm``, ``_rank_norm``); for the borda norm, its place (:func:`_borda_normalised`
    needs the candidates). The rank and borda norms are given ranks."""
    if norm in ("rank", "borda"):
        places = _places(bounds, query_of_hit, values)
        return places if norm == "borda" else 1 - places / np.diff(bounds)[query_of_hit]
    scores = values.astype(np.float64)
    if norm is None or len(scores) == 0:
        return scores
    if norm in ("sum", "zmuv"):
        return _sequential_norm(bounds, query_of_hit, scores, norm)
    maxima = _per_query(np.maximum, scores, bounds)
    if norm == "max":
        return scores / np.maximum(maxima, 1e-9)[query_of_hit]
    minima = _per_query(np.minimum, scores, bounds)
    return (scores - minima[query_of_hit]) / np.maximum(maxima - minima, 1e-9)[query_of_hit]


def _per_query(extreme: np.ufunc, scores: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Each query's maximum or minimum score (``extreme``: ``np.maximum``, ``np.minimum``), 0 where it has none."""
    held = np.diff(bounds) > 0
    found = np.zeros(len(bounds) - 1)
    found[held] = extreme.reduceat(scores, bounds[:-1][held])
    return found


def _sequential_norm(bounds: np.ndarray, query_of_hit: np.ndarray, scores: np.ndarray, norm: str) -> np.ndarray:
    """The sum and zmuv norms, whose sums ranx adds one score at a time in its run's order (score descending)."""
    hits = np.diff(bounds)
    by_score = np.lexsort((-scores, query_of_hit))
    total = _sums_in_order(scores[by_score], bounds[:-1], hits)
    if norm == "sum":
        minima = _per_query(np.minimum, scores, bounds)
        denominator = np.maximum(total - minima * hits, 1e-9)
        return (scores - minima[query_of_hit]) / denominator[query_of_hit]
    divisor = np.maximum(hits, 1)  # a query the run does not hold has no hit to divide
    mean = total / divisor
    deviations = scores[by_score] - mean[query_of_hit[by_score]]
    variance = _sums_in_order(deviations * deviations, bounds[:-1], hits) / divisor
    deviation = np.sqrt(variance)  # numba's var() ** 0.5 is compiled to a square root (it is not C's pow)
    return (scores - mean[query_of_hit]) / np.maximum(deviation, 1e-9)[query_of_hit]


def _sums_in_order(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each group's sum, ``values[start:start + length]`` added one at a time from 0, as a loop adds them (NumPy's
    own sums add in pairs)."""
    total = np.zeros(len(lengths))
    for offset in range(int(lengths.max(initial=0))):
        held = np.flatnonzero(lengths > offset)
        total[held] += values[starts[held] + offset]
    return total


def _refuse_repeated_hits(hits: Sequence[QueryHits], inverse: np.ndarray, owners: np.ndarray, keys: int) -> None:
    """A document twice for one query of one run is an error of that run, named by its line."""
    for index, run in enumerate(hits):
        if len(owners) and np.bincount(inverse[owners == index], minlength=keys).max(initial=0) > 1:
            from beirflow.runs.trec import read_run

            if run.run.path is not None:
                read_run(run.run.path)  # raises, naming the line
            raise ValueError(f"run {index + 1} holds a document twice for one query")


def ranx_fusion(
    hits: Sequence[QueryHits],
    all_queries: list[str],
    documents: int,
    method: str,
    norm: str | None,
    params: dict[str, Any] | None,
    queries_at_once: int,
) -> Iterator[Batch]:
    """ranx's fusion of the queries in batches of the runs that hold them."""
    from ranx import Run
    from ranx.fusion import fusion_switch
    from ranx.normalization import norm_switch

    from beirflow.evaluate import ranx_arrays

    patch_ranx_candidates()
    by_rank = _by_rank(method, norm)
    query_keys, doc_keys = ranx_arrays.keys(len(all_queries)), ranx_arrays.keys(documents)
    batches = (
        (members, np.array(numbers[start : start + queries_at_once], dtype=np.int64))
        for members, numbers in _by_members(hits, all_queries).items()
        for start in range(0, len(numbers), queries_at_once)
    )
    for members, numbers in batches:
        query_ids, batch_keys = [all_queries[number] for number in numbers.tolist()], query_keys[numbers]
        selected = []
        for index in members:
            bounds, places, scores = hits[index].columns(query_ids, by_rank)
            keys = np.repeat(np.arange(len(query_ids), dtype=np.int64), np.diff(bounds)) * documents + places
            _refuse_repeated_hits(
                [hits[index]], np.unique(keys, return_inverse=True)[1].reshape(-1), np.zeros(len(keys), np.int64), len(keys)
            )
            run = Run(name=f"run{index}")
            run.run = ranx_arrays.ranx_run(batch_keys, bounds, doc_keys[places], scores)
            run.sorted = True  # as Run(dict) leaves it: each query's hits by score
            selected.append(run)
        if norm is not None:
            selected = norm_switch(norm)(selected) if norm == "borda" else [norm_switch(norm)(run) for run in selected]
        method_params = dict(params or {})
        if "weights" in method_params:
            method_params["weights"] = [method_params["weights"][index] for index in members]
        queries, places, scores = ranx_arrays.run_columns(fusion_switch(METHODS[method])(selected, **method_params).run)
        position = np.empty(len(all_queries), dtype=np.int64)
        position[numbers] = np.arange(len(numbers))
        yield query_ids, position[queries], places.astype(np.int64), scores.astype(np.float64)


@cache
def patch_ranx_candidates() -> None:
    """ranx's ``get_candidates`` (BordaFuse, Condorcet, the borda normalisation) made to list each query's candidates
    in order of first appearance, run after run, instead of a Python set's order: a set of strings iterates in an
    order that hash randomisation picks anew in every process, and Condorcet ranks by it where votes tie (as does
    any rank method after the borda normalisation), so the same runs fused twice gave two runs. And Condorcet's
    candidates' places in each run found by :func:`places_in_runs`."""
    from importlib import import_module

    from numba.typed import List as TypedList
    from numba.types import unicode_type  # type: ignore[attr-defined]

    def get_candidates(runs: Any) -> Any:
        candidates = TypedList()
        for query_id in runs[0].keys():  # noqa: SIM118 (a ranx Run or a numba dict)
            found = TypedList(dict.fromkeys(doc_id for run in runs for doc_id in list(run[query_id].keys())))
            candidates.append(found if len(found) > 0 else TypedList.empty_list(unicode_type))
        return candidates

    for name in ("ranx.fusion.bordafuse", "ranx.fusion.condorcet", "ranx.normalization.borda_norm"):
        vars(import_module(name))["get_candidates"] = get_candidates  # the modules: ranx.fusion's names are its functions
    vars(import_module("ranx.fusion.condorcet"))["_get_run_indices"] = places_in_runs


def places_in_runs(results: Any, candidates: Any) -> list[list[int]]:
    """ranx's ``_get_run_indices`` for Condorcet: per run, each candidate's place in it (``run.index``), 1,000,000
    where it is absent; by a dict, not by searching the run for each candidate, and as Python lists, which its
    comparator (Python) reads faster than numba's. The same places, so the same sort."""
    found = []
    for run in results:
        place = {doc_id: index for index, doc_id in reversed(list(enumerate(run)))}  # the first place, as index()
        found.append([place.get(str(doc_id), 1_000_000) for doc_id in candidates])
    return found


def best_hits_columns(
    query_ids: list[str], sorted_ids: Any, queries: np.ndarray, places: np.ndarray, scores: np.ndarray, k: int
) -> HitColumns:
    """Each query's best ``k`` hits in run order (score descending, then document id: a place among the
    sorted ids), the queries in the order of ``query_ids`` (``queries``: each hit's place there)."""
    import pyarrow as pa

    by_place = _sorted_by(queries, places)  # as the methods in NumPy give them: lexsort is stable, so ties stay by place
    order = np.lexsort((-scores, queries) if by_place else (places, -scores, queries))
    queries, places, scores = queries[order], places[order], scores[order]
    ranks = ranks_from_starts(group_starts(queries), len(queries))
    kept = ranks <= k
    return HitColumns(
        pa.array(query_ids, type=pa.string()).take(pa.array(queries[kept])),
        sorted_ids.take(pa.array(places[kept])),
        ranks[kept],
        scores[kept],
    )


def hits_by_query(batches: Iterator[HitColumns]) -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """The columns a query at a time, as (query id, [(document id, score), ...])."""
    for hits in batches:
        query_ids, doc_ids, scores = hits.query_ids.to_pylist(), hits.doc_ids.to_pylist(), hits.scores.tolist()
        start = 0
        while start < len(query_ids):
            stop = start
            while stop < len(query_ids) and query_ids[stop] == query_ids[start]:
                stop += 1
            yield query_ids[start], list(zip(doc_ids[start:stop], scores[start:stop], strict=True))
            start = stop


def fuse_runs(
    runs: Sequence[RunDict],
    method: str,
    norm: str | None = "min-max",
    params: dict[str, Any] | None = None,
    k: int = 1000,
    queries_at_once: int = 100,
) -> RunDict:
    """:func:`fuse_tables` of runs held as dictionaries, collected."""
    tables = [RunTable.from_dict(run) for run in runs]
    return {
        query_id: dict(hits) for query_id, hits in hits_by_query(fuse_tables(tables, method, norm, params, k, queries_at_once))
    }
