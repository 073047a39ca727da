"""Rerankers through Snakemake: a cascade of tiny models over 4 query shards, and a killed rerank job."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from beirflow.models.batching import TokenBudget
from beirflow.rerank.candidates import Candidates
from beirflow.rerank.docstore import DocumentStore
from beirflow.rerank.scoring import Reranker, RerankSettings
from beirflow.runs.trec import read_run
from beirflow.workflow import paths
from conftest import Workflow, fork, sample_config

pytestmark = pytest.mark.workflow


# The cascade's proofs are about shards, depths and the merged runs, not lengths: documents are cut at 128
# tokens (512 by default), which makes each tiny-model rerank job mostly the cost of starting it.
MAX_LENGTH = 128


def cascade_config(cross_encoder: Path, monot5: Path) -> dict:
    return sample_config(
        bm25={"bm25-flat": {"fields": "flat"}},
        shards={"queries_per_shard": 16},
        rerank={
            "tiny-ce": {
                "kind": "cross-encoder",
                "model": str(cross_encoder),
                "first_stage": "bm25-flat",
                "depth": 30,
                "precision": "fp32",
                "max_length": MAX_LENGTH,
                "resources": {"gpus": 0},
            },
            "tiny-t5": {
                "kind": "monot5",
                "model": str(monot5),
                "first_stage": "tiny-ce",
                "depth": 10,
                "precision": "fp32",
                "max_length": MAX_LENGTH,
                "resources": {"gpus": 0},
            },
        },
    )


@pytest.fixture(scope="module")
def cascade(done: Workflow, tmp_path_factory: pytest.TempPathFactory, tiny_cross_encoder: Path, tiny_monot5: Path) -> Workflow:
    """A fork of the default run with the cascade configured: only what the cascade changes runs."""
    workflow = fork(done, tmp_path_factory.mktemp("cascade") / "work")
    workflow.write_config(cascade_config(tiny_cross_encoder, tiny_monot5))
    workflow.run()
    return workflow


def test_the_cascade_reranks_in_four_shards_and_heads_its_column(cascade: Workflow) -> None:
    for system in ("tiny-ce", "tiny-t5"):
        shards = sorted(
            path.name
            for path in (cascade.path(paths.system_folder("rerank", "scifact-sample", system)) / "shards").glob("*.trec")
        )
        assert shards == ["0000.trec", "0001.trec", "0002.trec", "0003.trec"]
    cross = read_run(cascade.path(paths.run("rerank", "scifact-sample", "tiny-ce")))
    final = read_run(cascade.path(paths.run("rerank", "scifact-sample", "tiny-t5")))
    assert len(cross) == len(final) == 50
    for query_id, hits in final.items():
        best = sorted(cross[query_id].items(), key=lambda hit: (-hit[1], hit[0]))[:10]
        assert set(hits) == {doc_id for doc_id, _ in best}
    markdown = cascade.path(paths.leaderboard("md")).read_text()
    assert "| bm25-flat » tiny-ce » tiny-t5 |" in markdown


def test_sharded_reranking_equals_one_pass_over_all_queries(cascade: Workflow, tiny_cross_encoder: Path) -> None:
    """The 4 shard jobs' merged run against the same model over all 50 queries at once."""
    bm25 = read_run(cascade.path(paths.run("bm25", "scifact-sample", "bm25-flat")))
    queries = {
        line.split('"_id": "')[1].split('"')[0]: line
        for line in cascade.path(paths.queries("scifact-sample")).read_text().splitlines()
    }
    import json

    texts = {query_id: json.loads(line)["text"] for query_id, line in queries.items()}
    shard = [Candidates(q, texts[q], sorted(hits, key=lambda d: (-hits[d], d))[:30]) for q, hits in bm25.items()]
    reranker = Reranker(
        RerankSettings(
            kind="cross-encoder",
            model=str(tiny_cross_encoder),
            first_stage="bm25-flat",
            depth=30,
            precision="fp32",
            max_length=MAX_LENGTH,
        ),
        "rerank.tiny-ce",
        "cpu",
    )
    hits, _ = reranker.rerank(
        shard, DocumentStore(cascade.path(paths.document_store("scifact-sample"))), TokenBudget(1 << 20, 4096)
    )
    merged = read_run(cascade.path(paths.run("rerank", "scifact-sample", "tiny-ce")))
    for candidates, scored in zip(shard, hits, strict=False):
        ours = merged[candidates.query_id]
        assert set(ours) == set(candidates.doc_ids)
        assert np.allclose([ours[doc_id] for doc_id, _ in scored], [score for _, score in scored], atol=1e-5)


def test_a_killed_rerank_job_leaves_nothing_done_and_the_rerun_equals_the_unkilled_run(tmp_path: Path, cascade: Workflow) -> None:
    workflow = fork(cascade, tmp_path / "killed")
    log = workflow.path("logs/rerank_shard/scifact-sample/tiny-ce/0000.log")
    log.unlink()
    shard = paths.rerank_shard("scifact-sample", "tiny-ce", "0000", "trec")
    merged = paths.run("rerank", "scifact-sample", "tiny-ce")  # the target: the job under test and its merge only
    process = subprocess.Popen(
        workflow.command("--forcerun", shard, "--", merged),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    try:
        while not log.exists():
            assert process.poll() is None, "the workflow ended before the rerank job started"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    shard_dir = workflow.path(paths.system_folder("rerank", "scifact-sample", "tiny-ce")) / "shards"
    assert not (shard_dir / "0000.trec").exists() and not (shard_dir / "0000.json").exists()
    # The same command again. (A plain run would keep the older merged run: Snakemake does not rebuild a
    # missing intermediate whose consumers are complete, and that run is still the unfaulted one.)
    workflow.run("--unlock")
    workflow.run("--rerun-incomplete", "--forcerun", shard, "--", merged)
    for relative in (shard, merged):
        assert workflow.path(relative).read_bytes() == cascade.path(relative).read_bytes(), relative
