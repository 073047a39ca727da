"""The cluster path on a real single-node SLURM cluster (.ci/slurm-cluster): the dense workflow (BM25, a
reranker, a dense retriever in 3 document shards, a fusion) through `--profile profiles/slurm`, equal to the
local run, its jobs in sacct and its cost from accounting; a job
array out of memory, retried with more; and the node set DOWN under a job. The other faults (killed,
cancelled and timed-out jobs) are in test_slurm_faults.py, which runs beside this module
(tests/cluster.py says how they share the node)."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from beirflow.report.cost import read_costs, sacct_usage
from beirflow.workflow import paths
from cluster import ClusterWorkflow, NodeTurns, cluster_fork, encoder_outputs, running_job, sacct, same_outputs
from conftest import REPO, Workflow, dense_config, sbatch_preview

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]


def _on_gpus(config: dict) -> dict:
    """The cluster test's override: every model job asks for one of the node's (fake) GPUs; scores do not change."""
    for family in ("rerank", "dense"):
        for entry in config[family].values():
            entry["resources"] = {**entry.get("resources", {}), "gpus": 1}
    return config


@pytest.fixture(scope="module")
def on_cluster(slurm: None, node_turns: NodeTurns, tmp_path_factory: pytest.TempPathFactory) -> Workflow:
    """conftest's dense workflow, run from nothing through the SLURM profile (every rule family, the document
    shards as a job array), to compare with the same config run locally (conftest's ``dense``)."""
    workflow = ClusterWorkflow(tmp_path_factory.mktemp("slurm"), _on_gpus(dense_config()))
    workflow.since = time.strftime("%Y-%m-%dT%H:%M:%S")  # type: ignore[attr-defined]
    with node_turns.shared():
        workflow.run()
    return workflow


def _metrics(workflow: Workflow) -> dict[tuple[str, str, str], str]:
    with open(workflow.path(paths.leaderboard("csv")), encoding="utf-8") as handle:
        return {(row["dataset"], row["system"], row["metric"]): row["value"] for row in csv.DictReader(handle)}


def test_the_workflow_on_slurm_equals_the_local_run(on_cluster: Workflow, dense: Workflow) -> None:
    assert _metrics(on_cluster) == _metrics(dense)
    assert len(_metrics(on_cluster)) == 4 * 4  # bm25-flat, minilm-rerank, minilm, bm25+minilm; 4 metrics each
    model_runs = [paths.run("rerank", "scifact-sample", "minilm-rerank"), paths.run("dense", "scifact-sample", "minilm")]
    same_outputs(on_cluster, dense, model_runs)


def test_its_jobs_are_in_sacct_and_the_gpu_rules_got_a_gpu(on_cluster: Workflow) -> None:
    jobs = {row["JobIDRaw"]: row for row in sacct("JobIDRaw", "JobID", "State", "AllocTRES", workdir=on_cluster.root)}
    records = [
        on_cluster.path(paths.rerank_shard("scifact-sample", "minilm-rerank", "0000", "json")),
        *(
            path
            for path in on_cluster.path("results/scifact-sample/embeddings").glob("*/**/*.json")
            if not path.name.endswith(".record.json")
        ),
    ]
    records.append(on_cluster.path(paths.provenance("dense", "scifact-sample", "minilm")))
    for record in records:
        job_id = json.loads(record.read_text())["slurm_job_id"]
        assert job_id in jobs, f"{record}: job {job_id} is not in sacct"
        assert jobs[job_id]["State"] == "COMPLETED" and "gres/gpu=1" in jobs[job_id]["AllocTRES"], (record, jobs[job_id])
    bm25 = json.loads(on_cluster.path(paths.provenance("bm25", "scifact-sample", "bm25-flat")).read_text())
    assert "gres/gpu" not in jobs[bm25["slurm_job_id"]]["AllocTRES"]  # CPU rules ask for none


def test_sacct_usage_reads_each_jobs_elapsed_seconds_and_gpus(on_cluster: Workflow) -> None:
    """beirflow.report.cost's reader against sacct's own columns, on the finished jobs of this workflow (and an
    id sacct does not know, left out)."""
    jobs = sacct("JobIDRaw", "ElapsedRaw", "AllocTRES", workdir=on_cluster.root)
    usage = sacct_usage([*(job["JobIDRaw"] for job in jobs), "999999999"])
    assert jobs and "999999999" not in usage
    for job in jobs:
        gpus = int(job["AllocTRES"].split("gres/gpu=")[1].split(",")[0]) if "gres/gpu=" in job["AllocTRES"] else 0
        assert usage[job["JobIDRaw"]] == (float(job["ElapsedRaw"]), gpus), job


def test_the_sbatch_calls_are_those_the_plan_predicts(on_cluster: Workflow) -> None:
    """Measured on the cluster: one submission per non-local job, one per array of shards."""
    import subprocess
    import sys

    since = on_cluster.since  # type: ignore[attr-defined]
    submitted = {row["JobID"].split("_")[0] for row in sacct("JobID", workdir=on_cluster.root, since=since)}
    plan = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "plan_grid.py"), "--configfile", str(on_cluster.config_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    predicted = int(next(line for line in plan.splitlines() if line.startswith("total")).split()[2])
    assert len(submitted) == predicted, plan


def _options(sbatch: str) -> list[str]:
    """An sbatch line's options up to the command, less those that name this run (job name, work dir, log
    file, account, an array's first task): the same for a preview and for the submission it previews."""
    words = shlex.split(sbatch.split(" --wrap=")[0])
    kept, skip = [], False
    for word in words[1:]:
        if skip:
            skip = False
        elif word in ("--job-name", "--output", "-D", "-A"):
            skip = True
        elif kept and kept[-1] == "--comment":  # an array's names its first task, which varies: the rule stays
            kept.append(word.split("_wildcards_")[0])
        else:
            kept.append(word)
    return kept


def _rule(sbatch: str) -> str:
    """The rule an sbatch line submits, from the comment the plugin gives it (rule_<name>[_wildcards_...])."""
    comment = sbatch.split(" --comment ")[1].split()[0].strip("'")
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def test_the_preview_prints_the_sbatch_lines_the_plugin_submitted(on_cluster: Workflow, tmp_path: Path) -> None:
    """scripts/sbatch_preview.py on a fresh workdir of the same config prints, without submitting, the options
    SLURM recorded for the real submissions (sacct's SubmitLine): a single job and an array of shards."""
    fresh = Workflow(tmp_path / "fresh", on_cluster.config)
    environment = {**os.environ, "BEIRFLOW_SLURM_PARTITION": "gpu"}
    previewed = {rule: lines[1] for rule, lines in sbatch_preview(fresh, environment=environment).items()}
    lines = [row["SubmitLine"] for row in sacct("SubmitLine", workdir=on_cluster.root, since=on_cluster.since)]  # type: ignore[attr-defined]
    submitted = {_rule(line): line for line in lines}
    for rule in ("rerank_shard", "encode_documents", "bm25_search"):
        expected, shown = _options(submitted[rule]), _options(previewed[rule])
        if "--array=1-3" in expected:  # the plugin adds a few MB to an array's --mem for its tasks' commands
            mem = expected.index("--mem") + 1
            assert 0 < int(expected[mem]) - int(shown[mem]) < 16, (expected, shown)
            expected[mem] = shown[mem]
        assert shown == expected, rule
    assert not list(fresh.root.glob("results/**/*.record.json"))


def test_the_cost_table_comes_from_slurm_accounting(on_cluster: Workflow) -> None:
    costs = read_costs(on_cluster.path(paths.cost()))
    rules = ["dense_search", *["encode_documents"] * 3, "encode_queries", "rerank_shard"]  # 3 document shards
    assert sorted(cost.rule for cost in costs) == rules
    assert all(cost.source == "sacct" and cost.gpus == 1 and cost.gpu_seconds == cost.elapsed_s > 0 for cost in costs), costs
    import re

    total = sum(cost.gpu_seconds for cost in costs) / 3600
    shown = re.search(r"all GPU jobs together: (\d+\.\d{3}) GPU-hours", on_cluster.path(paths.leaderboard("md")).read_text())
    # Within the printed rounding: a total such as 63 s = 0.0175 h sits on the rounding boundary, and
    # a sum of per-job hours and hours of the summed seconds may round it either way.
    assert shown and abs(float(shown.group(1)) - total) <= 0.0005 + 1e-9, (shown, total)


def test_a_job_out_of_memory_is_retried_with_more(slurm: None, node_turns: NodeTurns, dense: Workflow, tmp_path: Path) -> None:
    """450 MB is too little to load MiniLM: SLURM kills the job, and the retry asks for 900 MB (mem_mb x attempt)."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    workflow = cluster_fork(dense, tmp_path / "oom", resources={"gpus": 0, "mem_mb": 450, "runtime": 20})
    shards = encoder_outputs(dense, "corpus")
    with node_turns.shared():
        workflow.run("--forcerun", "encode_documents", "--", *shards)
    same_outputs(workflow, dense, shards)
    jobs = sacct("JobIDRaw", "JobID", "State", "ReqMem", workdir=workflow.root, since=since)
    # The first attempts ask for 450 MB (the plugin adds 1 MB to array jobs) and are killed.
    killed = [job for job in jobs if job["ReqMem"] in ("450M", "451M") and job["State"] != "COMPLETED"]
    assert killed and all(job["State"] in ("FAILED", "OUT_OF_MEMORY") for job in killed), jobs
    assert "exceeded memory limit" in Path("/var/log/beirflow-slurm/slurmd.log").read_text(errors="replace")
    for record in workflow.path("results/scifact-sample/embeddings").glob("*/corpus/????.json"):
        job_id = json.loads(record.read_text())["slurm_job_id"]
        finished = next(job for job in jobs if job["JobIDRaw"] == job_id)
        assert finished["State"] == "COMPLETED" and int(finished["ReqMem"].rstrip("M")) >= 900, finished
    assert any("_" in job["JobID"] for job in killed), killed  # the 2 document shards first went out as one job array


def test_a_node_set_down_mid_job_then_resumed_lets_the_workflow_finish(
    slurm: None, node_turns: NodeTurns, dense: Workflow, tmp_path: Path
) -> None:
    """Last in this module, and alone on the node: a node going DOWN fails every job on it, other tests' too.
    One shard is forced: one job on the node when it goes down."""
    node = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, check=True).stdout.split()[0]
    workflow = cluster_fork(dense, tmp_path / "down")
    shards = encoder_outputs(dense, "corpus")[:1]
    with node_turns.alone():
        since = time.strftime("%Y-%m-%dT%H:%M:%S")
        process = workflow.start("--forcerun", *shards, "--", *shards)
        try:
            running_job("encode_documents", process, workflow.root)
            time.sleep(2)
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=beirflow-fault-test"], check=True)
            time.sleep(5)
            # RESUME is refused once the node is back on its own (ReturnToService=2); either way it must be up.
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], capture_output=True, check=False)
            state = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, check=False).stdout.strip()
            assert "down" not in state and "drain" not in state, state
            output, _ = process.communicate(timeout=900)
        finally:
            if process.poll() is None:
                process.kill()
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], capture_output=True, check=False)
    assert process.returncode == 0, output[-5000:]
    # One copy of the job, requeued by SLURM (the profile's slurm-requeue), none resubmitted beside it: with the
    # plugin resubmitting and SLURM's default requeue as well, the failed shard ran a second time after the
    # workflow had ended, rewriting its outputs.
    queued = subprocess.run(["squeue", "-h", "-o", "%A|%Z"], capture_output=True, text=True, check=True).stdout
    assert not [line for line in queued.splitlines() if line.endswith(f"|{workflow.root}")], queued
    same_outputs(workflow, dense, shards)
    runs = sacct("JobIDRaw", "State", workdir=workflow.root, since=since, duplicates=True)
    assert [job["State"] for job in runs] == ["NODE_FAIL", "COMPLETED"], runs  # failed with the node, then ran again
    assert len({job["JobIDRaw"] for job in runs}) == 1, runs
