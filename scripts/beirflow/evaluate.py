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
from typing import Any

from beirflow.beir import Qrels
from beirflow.trec import RunDict, trec_eval_order

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


def rank_scores(run: RunDict) -> dict[str, dict[str, float]]:
    """Strictly decreasing scores in trec_eval's order, so ranx cannot reorder ties."""
    ranked = {}
    for query_id, hits in run.items():
        order = trec_eval_order(hits)
        ranked[query_id] = {doc_id: float(len(order) - position) for position, doc_id in enumerate(order)}
    return ranked


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


def _ranx_lists(qrels: dict[str, dict[str, int]], ranked: dict[str, dict[str, float]]) -> tuple[Any, Any]:
    """ranx's own input form: per query, an array of (document number, relevance or score) rows, the
    qrels best first (ranx's ideal DCG reads them in that order), the run in rank order.

    ``ranx.Qrels``/``ranx.Run`` would build numba typed dicts first, whose code numba cannot cache: that
    compiling cost every evaluation job 10 to 30 s of CPU. Documents are numbered, not hashed as ranx
    does, so two ids can never collide."""
    import numpy as np
    from numba.typed import List

    numbers: dict[str, int] = {}

    def rows(hits: list[tuple[str, float]]) -> Any:
        table = np.array([(numbers.setdefault(doc_id, len(numbers)), value) for doc_id, value in hits], dtype=np.float64)
        return table.reshape(len(hits), 2)

    query_ids = list(ranked)
    typed_qrels = List([rows(sorted(qrels[query_id].items(), key=lambda judged: -judged[1])) for query_id in query_ids])
    typed_run = List([rows(sorted(ranked[query_id].items(), key=lambda hit: -hit[1])) for query_id in query_ids])
    return typed_qrels, typed_run


def evaluate_run(qrels: Qrels, run: RunDict, metrics: Sequence[str]) -> Evaluation:
    """Score ``run`` against ``qrels``; see the module docstring for the conventions."""
    import ranx  # imported here: ranx compiles with numba on first use, which planning never needs

    for metric in metrics:
        check_metric(metric)
    judged = [query_id for query_id in qrels if qrels[query_id]]
    binary_safe = {query_id: {doc_id: max(rel, 0) for doc_id, rel in qrels[query_id].items()} for query_id in judged}
    ranked = rank_scores({query_id: hits for query_id, hits in run.items() if query_id in binary_safe and hits})

    per_query: dict[str, dict[str, float]] = {metric: dict.fromkeys(judged, 0.0) for metric in metrics}
    if ranked:
        typed_qrels, typed_run = _ranx_lists(binary_safe, ranked)
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
        unjudged_queries_in_run=sum(1 for query_id in run if query_id not in binary_safe),
    )
