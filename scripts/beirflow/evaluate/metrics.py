"""Evaluate a run with ranx, with the numbers of BEIR's evaluator (``trec_eval -c``).

Three things make ranx agree with trec_eval to 1e-6:

* Ties. trec_eval orders hits by score descending, then document id descending; ranx keeps
  no defined order for ties. Scores are replaced by ranks in trec_eval's order before
  ranx sees them (every metric here depends on the order only).
* Queries. Every judged query counts: one the run misses scores 0 and stays in the mean
  (``-c``); queries the qrels do not judge are left out and counted.
* Relevance. A judgement of 0 or below is not relevant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from beirflow.data.beir import Qrels
from beirflow.runs.table import RunTable
from beirflow.runs.trec import RunDict

if TYPE_CHECKING:
    import numpy as np

_METRIC = re.compile(r"^(ndcg|mrr|recall|precision)@(\d+)$")
_DISPLAY = {"ndcg": "nDCG", "mrr": "MRR", "recall": "R", "precision": "P"}


def check_metric(metric: str) -> str:
    if not _METRIC.match(metric):
        raise ValueError(f"unknown metric '{metric}': use ranx names such as ndcg@10, mrr@10, recall@100, precision@10")
    return metric


def display_name(metric: str) -> str:
    """'ndcg@10' -> 'nDCG@10', 'recall@100' -> 'R@100' (the names BEIR tables use)."""
    match = _METRIC.match(check_metric(metric))
    assert match is not None
    return f"{_DISPLAY[match.group(1)]}@{match.group(2)}"


@dataclass(frozen=True)
class Evaluation:
    """Mean and per-query values of each metric over the judged queries."""

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    judged_queries: int
    queries_without_hits: int
    unjudged_queries_in_run: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "judged_queries": self.judged_queries,
            "queries_without_hits": self.queries_without_hits,
            "unjudged_queries_in_run": self.unjudged_queries_in_run,
            "per_query": self.per_query,
        }


def _ranx_lists(qrels: dict[str, dict[str, int]], table: RunTable) -> tuple[list[str], Any, Any]:
    """The judged queries with hits, and ranx's own input form for them: per query, an array of (document
    number, relevance or score) rows, the qrels best first (ranx's ideal DCG reads them in that order), the
    run in trec_eval's order with strictly decreasing scores (its rank from the bottom), so that ranx
    cannot reorder ties.

    ``ranx.Qrels``/``ranx.Run`` would build numba typed dicts first, whose code numba cannot cache: that
    compiling cost every evaluation job 10 to 30 s of CPU. Documents are numbered, not hashed as ranx
    does, so two ids can never collide. The hits are ordered column-wise (a run of 7 million hits in
    about a second; per query in Python it took 11 s)."""
    import numpy as np
    from numba.typed import List

    judged = np.array([query_id in qrels for query_id in table.query_ids], dtype=bool)
    keep = judged[table.query_rows]
    query_rows, doc_rows, scores = table.query_rows[keep], table.doc_rows[keep], table.scores[keep]
    order = _trec_eval_order(query_rows, doc_rows, scores, table.doc_ids)
    query_rows, doc_rows = query_rows[order], doc_rows[order]
    starts = np.flatnonzero(np.r_[True, query_rows[1:] != query_rows[:-1]]) if len(query_rows) else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[starts, len(query_rows)])
    positions = np.arange(len(query_rows)) - np.repeat(starts, counts)
    rows = np.column_stack((doc_rows.astype(np.float64), (np.repeat(counts, counts) - positions).astype(np.float64)))
    query_ids = [table.query_ids[position] for position in query_rows[starts]]

    judged_docs = {doc_id for query_id in query_ids for doc_id in qrels[query_id]}
    numbers = {doc_id: number for number, doc_id in enumerate(table.doc_ids) if doc_id in judged_docs}
    numbers.update((doc_id, len(table.doc_ids) + extra) for extra, doc_id in enumerate(judged_docs - numbers.keys()))

    def judgements(query_id: str) -> Any:
        best_first = sorted(qrels[query_id].items(), key=lambda judged: -judged[1])
        listed = [(numbers[doc_id], relevance) for doc_id, relevance in best_first]
        return np.array(listed, dtype=np.float64).reshape(len(listed), 2)

    typed_qrels = List([judgements(query_id) for query_id in query_ids])
    typed_run = List(np.split(rows, starts[1:]) if len(starts) else [])
    return query_ids, typed_qrels, typed_run


def _trec_eval_order(query_rows: np.ndarray, doc_rows: np.ndarray, scores: np.ndarray, doc_ids: Sequence[str]) -> np.ndarray:
    """The order of the hits grouped by query (in order of first appearance), each query's by score
    descending, then document id descending. A run beirflow wrote is in that order already but for its
    ties (ordered by id ascending), so only the tied hits are sorted; any other file is sorted whole."""
    import numpy as np

    next_same_query = query_rows[1:] == query_rows[:-1]
    if not (np.all(query_rows[1:] >= query_rows[:-1]) and np.all((scores[1:] <= scores[:-1]) | ~next_same_query)):
        ranks = np.empty(len(doc_ids), dtype=np.int64)
        ranks[np.argsort(np.array(doc_ids, dtype=object), kind="stable")] = np.arange(len(doc_ids))
        return np.lexsort((-ranks[doc_rows], -scores, query_rows))
    order = np.arange(len(query_rows))
    ties_next = next_same_query & (scores[1:] == scores[:-1])
    tied = np.flatnonzero(np.r_[ties_next, False] | np.r_[False, ties_next])
    if len(tied):
        group = np.cumsum(np.r_[True, ~ties_next])[tied]  # a tie group: hits of one query with one score
        documents, which = np.unique(doc_rows[tied], return_inverse=True)  # the tied hits' distinct documents
        texts = [doc_ids[row] for row in documents.tolist()]
        by_id = sorted(range(len(texts)), key=texts.__getitem__)
        id_rank = np.empty(len(documents), dtype=np.int64)
        id_rank[by_id] = np.arange(len(documents))
        descending = len(documents) - 1 - id_rank[which.reshape(-1)]
        order[tied] = tied[np.argsort(group * len(documents) + descending)]  # one integer key: group, then id descending
    return order


def evaluate_run(qrels: Qrels, run: RunDict | RunTable, metrics: Sequence[str]) -> Evaluation:
    """Score ``run`` against ``qrels``; see the module docstring for the conventions."""
    import ranx  # imported here: ranx compiles with numba on first use, which planning never needs

    for metric in metrics:
        check_metric(metric)
    table = run if isinstance(run, RunTable) else RunTable.from_dict(run)
    judged = [query_id for query_id in qrels if qrels[query_id]]
    binary_safe = {query_id: {doc_id: max(rel, 0) for doc_id, rel in qrels[query_id].items()} for query_id in judged}

    per_query: dict[str, dict[str, float]] = {metric: dict.fromkeys(judged, 0.0) for metric in metrics}
    ranked, typed_qrels, typed_run = _ranx_lists(binary_safe, table)
    if ranked:
        # Asked for one metric's per-query values, ranx 0.3.21 looks its result up under the metric's short
        # name ('mrr' for 'mrr@10') and fails; asked for two, it returns them all by full name.
        requested = list(metrics) * (2 if len(metrics) == 1 else 1)
        scores = ranx.evaluate(typed_qrels, typed_run, requested, return_mean=False)
        for metric in metrics:
            for query_id, value in zip(ranked, scores[metric], strict=True):
                per_query[metric][query_id] = float(value)

    means = {metric: (sum(values.values()) / len(values) if values else 0.0) for metric, values in per_query.items()}
    return Evaluation(
        metrics=means,
        per_query=per_query,
        judged_queries=len(judged),
        queries_without_hits=len(judged) - len(ranked),
        unjudged_queries_in_run=sum(1 for query_id in table.query_ids if query_id not in binary_safe),
    )
