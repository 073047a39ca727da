"""Fusion of runs with ranx: reciprocal rank fusion, normalised CombSUM and ranx's other unsupervised methods.

ranx's ``fuse`` wants every run to hold the same queries; a first stage can miss a query (BM25 finds
nothing for a query of stopwords), so queries are fused over the runs that hold them, and a query
only one run holds keeps that run's order under the method's scores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from beirflow.trec import RunDict, best_hits

# Config name -> ranx method. Supervised methods (probfuse, bayesfuse, ...) need training on qrels
# and are left out: a fused run must not see the judgements it is evaluated on.
METHODS = {
    "rrf": "rrf",
    "combsum": "sum",
    "combmnz": "mnz",
    "combmax": "max",
    "combmin": "min",
    "combmed": "med",
    "combanz": "anz",
    "combgmnz": "gmnz",
    "wsum": "wsum",
    "wmnz": "wmnz",
    "isr": "isr",
    "log_isr": "log_isr",
    "logn_isr": "logn_isr",
    "bordafuse": "bordafuse",
    "condorcet": "condorcet",
    "rbc": "rbc",
}
NORMS = ("min-max", "max", "sum", "zmuv", "rank", "borda")


# Document ids reach ranx as stand-ins of one width. ranx stores a run's ids as a NumPy array of
# dtype '<U{longest id}', and numba compiles its code once per such dtype: with the real ids every
# dataset (and every run of another longest id) compiled ranx's fusion anew, 13 to 26 s of CPU a job,
# where the cached code takes none.
STAND_IN_WIDTH = 12


def stand_ins(runs: Sequence[RunDict]) -> dict[str, str]:
    """Each document id's stand-in: its place among all ids in sorted order, so stand-ins sort as the ids do."""
    ids = sorted({doc_id for run in runs for hits in run.values() for doc_id in hits})
    if len(ids) >= 10**STAND_IN_WIDTH:
        raise ValueError(f"{len(ids)} distinct documents: more than fusion's stand-in ids can number")
    return {doc_id: f"{position:0{STAND_IN_WIDTH}d}" for position, doc_id in enumerate(ids)}


def _ranx_run(run: RunDict, name: str, stand_in: Mapping[str, str]) -> Any:
    from ranx import Run

    return Run(
        {query_id: {stand_in[doc_id]: score for doc_id, score in hits.items()} for query_id, hits in run.items()}, name=name
    )


def fuse_runs(
    runs: Sequence[RunDict],
    method: str,
    norm: str | None = "min-max",
    params: dict[str, Any] | None = None,
    k: int = 1000,
    queries_at_once: int = 100,
) -> RunDict:
    """The fused run, each query cut to its best ``k`` (score descending, then document id).

    ranx sees ``queries_at_once`` queries at a time: its runs take about 1 KB a hit (two runs of 3,000
    queries x 1,000 hits took 3.4 GB in batches of 1,000 queries). Every normalisation and method here
    works query by query, so the result is the same."""
    from ranx.fusion import fusion_switch
    from ranx.normalization import norm_switch

    if method not in METHODS:
        raise ValueError(f"unknown fusion method '{method}' ({', '.join(METHODS)})")
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for query_id in dict.fromkeys(query_id for run in runs for query_id in run):
        groups[tuple(index for index, run in enumerate(runs) if run.get(query_id))].append(query_id)
    stand_in = stand_ins(runs)
    doc_id_of = {value: doc_id for doc_id, value in stand_in.items()}
    fused: RunDict = {}
    batches = (
        (members, query_ids[start : start + queries_at_once])
        for members, query_ids in groups.items()
        for start in range(0, len(query_ids), queries_at_once)
    )
    for members, query_ids in batches:
        selected = [
            _ranx_run({query_id: runs[index][query_id] for query_id in query_ids}, f"run{index}", stand_in) for index in members
        ]
        if norm is not None:
            selected = norm_switch(norm)(selected) if norm == "borda" else [norm_switch(norm)(run) for run in selected]
        method_params = dict(params or {})
        if "weights" in method_params:
            method_params["weights"] = [method_params["weights"][index] for index in members]
        result = fusion_switch(METHODS[method])(selected, **method_params).to_dict()
        for query_id in query_ids:
            hits = {doc_id_of[value]: score for value, score in result.get(query_id, {}).items()}
            fused[query_id] = dict(best_hits(hits, k))
    return fused
