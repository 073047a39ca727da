"""The cost table: accounting over benchmark files, GPU-seconds, shared encodings counted once."""

from __future__ import annotations

import pytest

from beirflow.report.cost import JobRecord, gpu_hours, job_costs, read_costs, to_csv


def test_accounting_wins_and_gpu_seconds_are_gpus_times_elapsed(tmp_path) -> None:
    records = [
        JobRecord("nq", ("monot5-3b",), "rerank_shard", "monot5-3b/0000", "101", 50.0, 1),
        JobRecord("nq", ("gtr", "gtr-hnsw"), "encode_documents", "gtr-abc/0000", None, 120.0, 2),
        JobRecord("nq", ("gtr",), "dense_search", "gtr", None, None, 0),
    ]
    costs = job_costs(records, {"101": (3600.0, 4)})
    assert [(cost.system, cost.elapsed_s, cost.gpus, cost.gpu_seconds, cost.source) for cost in costs] == [
        ("monot5-3b", 3600.0, 4, 14400.0, "sacct"),
        ("gtr", 120.0, 2, 240.0, "benchmark"),
        ("gtr-hnsw", 120.0, 2, 240.0, "benchmark"),
        ("gtr", 0.0, 0, 0.0, "unknown"),
    ]
    per_system, total = gpu_hours(costs)
    assert per_system[("nq", "monot5-3b")] == pytest.approx(4.0)
    assert per_system[("nq", "gtr")] == per_system[("nq", "gtr-hnsw")] == pytest.approx(240 / 3600)
    assert total == pytest.approx(4.0 + 240 / 3600)  # the shared encoding once
    (tmp_path / "cost.csv").write_text(to_csv(costs))
    assert read_costs(tmp_path / "cost.csv") == costs
