"""Fusion of runs with ranx: reciprocal rank fusion, normalised CombSUM and ranx's other unsupervised methods.

ranx's ``fuse`` wants every run to hold the same queries; a first stage can miss a query (BM25 finds
nothing for a query of stopwords), so queries are fused over the runs that hold them, and a query
only one run holds keeps that run's order under the method's scores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from beirflow.fusion.methods import METHODS, RANK_METHODS, RANK_NORMS, parameter_problem
from beirflow.runs.table import RunTable
from beirflow.runs.trec import RunDict, best_hits

# Queries and documents reach ranx as numbered keys of one width (``ranx_arrays.keys``). ranx stores a
# run's ids as a NumPy array of dtype '<U{longest id}', and numba compiles its code once per such dtype:
# with the real ids every dataset (and every run of another longest id) compiled ranx's fusion anew,
# 13 to 26 s of CPU a job, where the cached code takes none.


@dataclass(frozen=True)
class SortedDocIds:
    """Every document id of the runs in sorted order: a document's key for ranx is its place in that
    order, so keys sort as the ids do."""

    ids: list[str]

    @classmethod
    def of(cls, tables: Sequence[RunTable]) -> SortedDocIds:
        return cls(sorted({doc_id for table in tables for doc_id in table.doc_ids}))

    def places(self, table: RunTable) -> np.ndarray:
        """Per document of ``table`` (its ``doc_ids``), its place among all ids."""
        return np.searchsorted(np.array(self.ids, dtype=object), np.array(table.doc_ids, dtype=object))


class QueryHits:
    """One run's hits per query, read off its columns a query at a time, as places among all ids."""

    def __init__(self, table: RunTable, doc_ids: SortedDocIds) -> None:
        grouped = bool(np.all(table.query_rows[1:] >= table.query_rows[:-1]))  # each query's hits together, as written
        self.order = None if grouped else np.argsort(table.query_rows, kind="stable")  # file order within a query
        query_rows = table.query_rows if self.order is None else table.query_rows[self.order]
        bounds = np.searchsorted(query_rows, np.arange(len(table.query_ids) + 1))
        self.slices = {query_id: (int(bounds[row]), int(bounds[row + 1])) for row, query_id in enumerate(table.query_ids)}
        self.places = doc_ids.places(table).astype(np.int64)[table.doc_rows]
        self.scores = table.scores
        self.ranks = table.ranks

    def holds(self, query_id: str) -> bool:
        start, stop = self.slices.get(query_id, (0, 0))
        return stop > start

    def columns(self, query_ids: Sequence[str], by_rank: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The hits of ``query_ids`` in file order, query after query: the bounds of each query's hits,
        their documents' places and their scores (``by_rank``: minus their ranks as written, so that ranx
        ranks them as the file does)."""
        spans = [self.slices[query_id] for query_id in query_ids]
        rows = np.concatenate([np.arange(start, stop) for start, stop in spans]) if spans else np.zeros(0, dtype=np.int64)
        if self.order is not None:
            rows = self.order[rows]
        bounds = np.cumsum([0, *(stop - start for start, stop in spans)], dtype=np.int64)
        values = -self.ranks[rows].astype(np.float64) if by_rank else self.scores[rows].astype(np.float64)
        return bounds, self.places[rows], values


def fuse_tables(
    tables: Sequence[RunTable],
    method: str,
    norm: str | None = "min-max",
    params: dict[str, Any] | None = None,
    k: int = 1000,
    queries_at_once: int = 100,
) -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """Each query's fused best ``k`` hits (score descending, then document id), one query at a time.

    The runs are held as columns (two runs of 7,000 queries x 1,000 hits as dictionaries took 2.75 GB),
    and ranx sees ``queries_at_once`` queries at a time: its runs take about 1 KB a hit. Every
    normalisation and method here works query by query, so the result is the same as fusing at once."""
    from ranx import Run
    from ranx.fusion import fusion_switch
    from ranx.normalization import norm_switch

    from beirflow.evaluate import ranx_arrays

    if method not in METHODS:
        raise ValueError(f"unknown fusion method '{method}' ({', '.join(METHODS)})")
    problem = parameter_problem(method, dict(params or {}), len(tables))
    if problem:
        raise ValueError(problem)
    if method == "rrf":
        yield from reciprocal_rank_fusion(tables, float((params or {}).get("k", 60)), k)
        return
    by_rank = method in RANK_METHODS or norm in RANK_NORMS
    doc_ids = SortedDocIds.of(tables)
    runs = [QueryHits(table, doc_ids) for table in tables]
    all_queries = list(dict.fromkeys(query_id for table in tables for query_id in table.query_ids))
    query_keys, doc_keys = ranx_arrays.keys(len(all_queries)), ranx_arrays.keys(len(doc_ids.ids))
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for number, query_id in enumerate(all_queries):
        groups[tuple(index for index, run in enumerate(runs) if run.holds(query_id))].append(number)
    batches = (
        (members, np.array(numbers[start : start + queries_at_once], dtype=np.int64))
        for members, numbers in groups.items()
        for start in range(0, len(numbers), queries_at_once)
    )
    for members, numbers in batches:
        query_ids, batch_keys = [all_queries[number] for number in numbers.tolist()], query_keys[numbers]
        selected = []
        for index in members:
            bounds, places, scores = runs[index].columns(query_ids, by_rank)
            run = Run(name=f"run{index}")
            run.run = ranx_arrays.ranx_run(batch_keys, bounds, doc_keys[places], scores)
            run.sorted = True  # as Run(dict) leaves it: each query's hits by score
            selected.append(run)
        if norm is not None:
            selected = norm_switch(norm)(selected) if norm == "borda" else [norm_switch(norm)(run) for run in selected]
        method_params = dict(params or {})
        if "weights" in method_params:
            method_params["weights"] = [method_params["weights"][index] for index in members]
        fused_queries, fused_documents, fused_scores = ranx_arrays.run_columns(
            fusion_switch(METHODS[method])(selected, **method_params).run
        )
        order = np.argsort(fused_queries, kind="stable")
        fused_queries, fused_documents, fused_scores = (
            fused_queries[order],
            fused_documents[order].tolist(),
            fused_scores[order].tolist(),
        )
        starts, stops = np.searchsorted(fused_queries, numbers).tolist(), np.searchsorted(fused_queries, numbers + 1).tolist()
        for query_id, start, stop in zip(query_ids, starts, stops, strict=True):
            hits = {
                doc_ids.ids[document]: score
                for document, score in zip(fused_documents[start:stop], fused_scores[start:stop], strict=True)
            }
            yield query_id, best_hits(hits, k)


def reciprocal_rank_fusion(tables: Sequence[RunTable], rrf_k: float, k: int) -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """RRF as Cormack et al. and ``pyserini.fusion`` define it: a document's score is the sum, over the
    runs holding it, of ``1 / (rrf_k + its rank as written)``, added in the runs' order; each query's best
    ``k`` by score descending, then document id ascending. Queries come in order of first appearance."""
    doc_ids = SortedDocIds.of(tables)
    all_queries = list(dict.fromkeys(query_id for table in tables for query_id in table.query_ids))
    query_number = {query_id: number for number, query_id in enumerate(all_queries)}
    documents = max(len(doc_ids.ids), 1)
    keys, contributions = [], []
    for table in tables:
        queries = np.array([query_number[query_id] for query_id in table.query_ids], dtype=np.int64)
        places = doc_ids.places(table).astype(np.int64)
        keys.append(queries[table.query_rows] * documents + places[table.doc_rows])
        contributions.append(1.0 / (rrf_k + table.ranks.astype(np.float64)))
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    scores = np.bincount(inverse.reshape(-1), weights=np.concatenate(contributions), minlength=len(unique))
    query_of, place_of = unique // documents, unique % documents
    order = np.lexsort((place_of, -scores, query_of))
    query_of, place_of, scores = query_of[order], place_of[order], scores[order]
    bounds = np.searchsorted(query_of, np.arange(len(all_queries) + 1))
    for number, query_id in enumerate(all_queries):
        start, stop = int(bounds[number]), min(int(bounds[number + 1]), int(bounds[number]) + k)
        yield (
            query_id,
            [
                (doc_ids.ids[place], score)
                for place, score in zip(place_of[start:stop].tolist(), scores[start:stop].tolist(), strict=True)
            ],
        )


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
    return {query_id: dict(hits) for query_id, hits in fuse_tables(tables, method, norm, params, k, queries_at_once)}
