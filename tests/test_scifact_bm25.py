"""Acceptance on real data: BM25 on all of SciFact equals Pyserini's published BEIR figures to 4 decimals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import REPO, Workflow, sample_config

from beirflow.evaluate import display_name

EXPECTED = REPO / "tests" / "expected" / "pyserini_bm25_beir.csv"


def published(dataset: str) -> dict[tuple[str, str], float]:
    with open(EXPECTED, encoding="utf-8") as handle:
        return {(row["system"], row["metric"]): float(row["value"]) for row in csv.DictReader(handle) if row["dataset"] == dataset}


@pytest.mark.workflow
@pytest.mark.shared_data
def test_bm25_on_scifact_equals_pyserini_published_figures(shared_scifact: Path, tmp_path: Path) -> None:
    workflow = Workflow(tmp_path / "scifact", sample_config(datasets={"scifact": {"path": str(shared_scifact)}}, rerank={}, dense={}, fusion={}))
    workflow.run()
    expected = published("scifact")
    assert len(expected) == 6
    evaluated = json.loads(workflow.path("results/scifact/metrics.json").read_text())["systems"]
    for system in ("bm25-flat", "bm25-multifield"):
        metrics = evaluated[system]
        assert metrics["judged_queries"] == 300 and metrics["queries_without_hits"] == 0
        for metric in ("ndcg@10", "recall@100", "recall@1000"):
            assert round(metrics["metrics"][metric], 4) == expected[(system, display_name(metric))], (system, metric)
