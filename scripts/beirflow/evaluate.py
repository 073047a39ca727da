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
from pathlib import Path
from typing import Any

from beirflow.beir import Qrels
from beirflow.trec import RunDict, read_run, trec_eval_order

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


def evaluate_run_file(qrels: Qrels, path: Path, metrics: Sequence[str]) -> Evaluation:
    """:func:`evaluate_run` of a run file, read column by column (an MS MARCO-sized run is 7 million
    lines: a dict of dicts of them took most of an evaluation job). A file the column reader cannot
    take as it is (a malformed line, a repeated hit, other whitespace) is read line by line, which
    names a bad line."""
    columns = _run_columns(path)
    if columns is None:
        return evaluate_run(qrels, read_run(path), metrics)
    return _evaluate_columns(qrels, *columns, metrics)


def _run_columns(path: Path) -> tuple[Any, Any, Any] | None:
    """(query ids, document ids, scores) of a run written one space apart, as beirflow writes runs;
    None where the file is not that (the line reader then says what is wrong, and where)."""
    import pandas as pd

    if not _single_spaced(path):
        return None
    # pandas 3 reads every double exactly by default; before it, only the round-trip parser does,
    # and a score read a hair off could make or break a tie.
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    try:
        frame = pd.read_csv(
            path,
            sep=" ",
            header=None,
            usecols=[0, 2, 4, 5],
            names=["query", "q0", "doc", "rank", "score", "tag"],
            dtype={"query": str, "doc": str, "score": "float64", "tag": str},
            engine="c",
            **exact,
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if frame.empty or frame.isna().to_numpy().any() or frame.duplicated(["query", "doc"]).any():
        return None
    return frame["query"].to_numpy(), frame["doc"].to_numpy(), frame["score"].to_numpy()


def _single_spaced(path: Path) -> bool:
    """Whether fields are one space apart on every line: no tab, carriage return, doubled, leading or
    trailing space (split on one space, ' q1' or 'q1\tQ0' would shift or glue fields silently)."""
    import mmap

    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:1] == b" ":
            return False
        return all(data.find(pattern) < 0 for pattern in (b"\t", b"\r", b"  ", b"\n ", b" \n"))


def _evaluate_columns(qrels: Qrels, queries: Any, documents: Any, scores: Any, metrics: Sequence[str]) -> Evaluation:
    """:func:`evaluate_run` over a run's columns: the same conventions, the same numbers."""
    import numpy as np
    import pandas as pd
    import ranx
    from numba.typed import List

    for metric in metrics:
        check_metric(metric)
    judged = [query_id for query_id in qrels if qrels[query_id]]
    judged_set = set(judged)
    run_queries = pd.unique(queries)
    kept = pd.Series(queries).isin(judged_set).to_numpy()
    query_codes, query_ids = pd.factorize(queries[kept])  # in the file's order of first appearance, as a dict keeps them
    # Documents numbered in id order, so that trec_eval's tie order (score, then id, descending) is one lexsort.
    doc_codes, doc_ids = pd.factorize(documents[kept], sort=True)
    hit_scores = scores[kept]
    order = np.lexsort((-doc_codes, -hit_scores, query_codes))
    counts = np.bincount(query_codes, minlength=len(query_ids))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sorted_queries = query_codes[order]
    positions = np.arange(len(order)) - starts[sorted_queries]
    run_rows = np.column_stack((doc_codes[order].astype(np.float64), (counts[sorted_queries] - positions).astype(np.float64)))

    binary_safe = {query_id: {doc_id: max(rel, 0) for doc_id, rel in qrels[query_id].items()} for query_id in judged}
    judged_docs = [sorted(binary_safe[query_id].items(), key=lambda judged: -judged[1]) for query_id in query_ids]
    flat = pd.Index([doc_id for hits in judged_docs for doc_id, _ in hits], dtype=object)
    numbers = pd.Index(doc_ids, dtype=object).get_indexer(flat)
    unseen = numbers < 0
    numbers[unseen] = len(doc_ids) + np.arange(int(unseen.sum()))  # judged, never retrieved: numbers of their own
    typed_qrels, typed_run, offset = List(), List(), 0
    for index, hits in enumerate(judged_docs):
        relevance = np.array([rel for _, rel in hits], dtype=np.float64)
        typed_qrels.append(np.column_stack((numbers[offset : offset + len(hits)].astype(np.float64), relevance)))
        offset += len(hits)
        typed_run.append(np.ascontiguousarray(run_rows[starts[index] : starts[index] + counts[index]]))

    per_query: dict[str, dict[str, float]] = {metric: dict.fromkeys(judged, 0.0) for metric in metrics}
    if len(query_ids):
        requested = list(metrics) * (2 if len(metrics) == 1 else 1)  # see evaluate_run
        values = ranx.evaluate(typed_qrels, typed_run, requested, return_mean=False)
        for metric in metrics:
            for query_id, value in zip(query_ids, values[metric], strict=True):
                per_query[metric][query_id] = float(value)
    means = {metric: (sum(values.values()) / len(values) if values else 0.0) for metric, values in per_query.items()}
    return Evaluation(
        metrics=means,
        per_query=per_query,
        judged_queries=len(judged),
        queries_without_hits=len(judged) - len(query_ids),
        unjudged_queries_in_run=sum(1 for query_id in run_queries if query_id not in judged_set),
    )


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
