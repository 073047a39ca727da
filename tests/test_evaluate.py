"""Evaluation equals BEIR's official evaluator (pytrec_eval, i.e. trec_eval -c) to 1e-6."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytrec_eval

from beirflow.data.beir import BeirFiles, prepare_dataset
from beirflow.evaluate.metrics import display_name, evaluate_run
from beirflow.runs.table import read_run_table
from beirflow.runs.trec import RunDict, trec_eval_order, write_run
from conftest import SAMPLE

METRICS = ["ndcg@10", "mrr@10", "recall@100", "recall@1000", "precision@10"]


def test_hand_computed_values() -> None:
    qrels = {"q1": {"a": 2, "b": 1, "c": 0}, "q2": {"x": 1}, "q3": {"y": 0}}
    run = {"q1": {"c": 3.0, "a": 2.0, "z": 1.0, "b": 0.5}, "q3": {"y": 1.0}, "q9": {"a": 1.0}}
    result = evaluate_run(qrels, run, ["ndcg@10", "mrr@10", "recall@100"])
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert result.per_query["ndcg@10"] == pytest.approx({"q1": dcg / ideal, "q2": 0.0, "q3": 0.0})
    assert result.per_query["mrr@10"]["q1"] == pytest.approx(0.5)
    assert result.metrics["recall@100"] == pytest.approx((1 + 0 + 0) / 3)  # q2 has no hits and still counts
    assert (result.judged_queries, result.queries_without_hits, result.unjudged_queries_in_run) == (3, 1, 1)


def test_ties_follow_trec_eval_docid_descending() -> None:
    assert trec_eval_order({"d1": 1.0, "d3": 1.0, "d2": 1.0, "d0": 2.0}) == ["d0", "d3", "d2", "d1"]
    qrels = {"q": {"d1": 1}}
    # d1 ties with d2 at the top; trec_eval puts d2 first, so the relevant d1 is rank 2.
    result = evaluate_run(qrels, {"q": {"d1": 1.0, "d2": 1.0}}, ["mrr@10"])
    assert result.metrics["mrr@10"] == pytest.approx(0.5)


def test_display_names() -> None:
    assert [display_name(m) for m in METRICS] == ["nDCG@10", "MRR@10", "R@100", "R@1000", "P@10"]
    with pytest.raises(ValueError, match="unknown metric 'map@100'"):
        display_name("map@100")


def _trec_eval_c(qrels: dict, run: RunDict) -> dict[str, float]:
    """BEIR's evaluator: pytrec_eval per query, averaged over every judged query (-c)."""
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "recall.1000", "P.10"})
    per_query = evaluator.evaluate(run)
    top10 = {q: {d: hits[d] for d in trec_eval_order(hits)[:10]} for q, hits in run.items()}
    reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    names = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "recall@1000": "recall_1000", "precision@10": "P_10"}
    means = {metric: sum(per_query.get(q, {}).get(name, 0.0) for q in qrels) / len(qrels) for metric, name in names.items()}
    means["mrr@10"] = sum(reciprocal.get(q, {}).get("recip_rank", 0.0) for q in qrels) / len(qrels)
    return means


@pytest.fixture(scope="module")
def bm25_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, RunDict]]:
    """Real BM25 runs (flat and multifield) on the sample: 50 queries, up to 600 hits each. (All of SciFact
    cost about 50 CPU-seconds more here; the SciFact acceptance test evaluates all of it through the workflow
    and matches Pyserini's published figures.)"""
    from beirflow.bm25.lucene import Bm25Params, build_index, search

    prepared = prepare_dataset("scifact", BeirFiles(SAMPLE, "test"))
    runs = {}
    for fields in ("flat", "multifield"):
        index = tmp_path_factory.mktemp("index") / fields
        build_index(SAMPLE / "corpus.jsonl", index, fields, threads=2)
        hits = search(index, prepared.queries, Bm25Params(fields=fields), threads=2)
        runs[fields] = {q: dict(h) for q, h in hits}
    return prepared.qrels, runs


def _assert_equal_to_trec_eval(qrels: dict, run: RunDict, tmp_path: Path) -> None:
    """Three ways in: the run as given (hits in rank order: only ties are sorted), its hits reversed
    (sorted whole), and the file beirflow writes, read column-wise."""
    path = tmp_path / "run.trec"
    with open(path, "w", encoding="utf-8") as handle:
        write_run(handle, {query_id: hits.items() for query_id, hits in run.items()}, tag="t")
    reversed_hits = {query_id: dict(reversed(hits.items())) for query_id, hits in run.items()}
    reference = _trec_eval_c(qrels, run)
    for form in (run, reversed_hits, read_run_table(path)):
        ours = evaluate_run(qrels, form, METRICS)
        for metric in METRICS:
            assert ours.metrics[metric] == pytest.approx(reference[metric], abs=1e-6), metric
        assert ours.per_query == evaluate_run(qrels, run, METRICS).per_query


@pytest.mark.parametrize("fields", ["flat", "multifield"])
def test_real_bm25_runs_equal_trec_eval(bm25_runs, fields: str, tmp_path: Path) -> None:
    qrels, runs = bm25_runs
    _assert_equal_to_trec_eval(qrels, runs[fields], tmp_path)


def _ties(run: RunDict) -> int:
    return sum(len(hits) - len(set(hits.values())) for hits in run.values())


@pytest.mark.parametrize("decimals", [2, 1, 0])
def test_tied_runs_equal_trec_eval(bm25_runs, decimals: int, tmp_path: Path) -> None:
    """Ties are where ranx alone differs from trec_eval; coarser scores make many of them."""
    qrels, runs = bm25_runs
    coarse = {q: {d: round(s, decimals) for d, s in hits.items()} for q, hits in runs["flat"].items()}
    assert _ties(coarse) > 1000
    _assert_equal_to_trec_eval(qrels, coarse, tmp_path)


def test_ranx_alone_would_differ_on_ties(bm25_runs) -> None:
    """The guard against a vacuous cross-check: without trec_eval's tie order, ranx disagrees."""
    import ranx

    qrels, runs = bm25_runs
    coarse = {q: {d: float(round(s)) for d, s in hits.items()} for q, hits in runs["flat"].items()}
    plain = ranx.evaluate(ranx.Qrels.from_dict(qrels), ranx.Run.from_dict(coarse), "ndcg@10", make_comparable=True)
    assert abs(plain - _trec_eval_c(qrels, coarse)["ndcg@10"]) > 1e-4


def test_queries_missing_from_the_run_score_zero_like_trec_eval_c(bm25_runs, tmp_path: Path) -> None:
    qrels, runs = bm25_runs
    partial = dict(list(runs["flat"].items())[::2])
    result = evaluate_run(qrels, partial, METRICS)
    assert result.queries_without_hits == len(qrels) - len(partial)
    _assert_equal_to_trec_eval(qrels, partial, tmp_path)
