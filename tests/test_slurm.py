"""The cluster path on a real single-node SLURM cluster (.ci/slurm-cluster): the embedded default
through `--profile profiles/slurm`, its jobs in sacct, and faults (a cancelled job, a node set DOWN)."""

from __future__ import annotations

import csv
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from beirflow.cost import read_costs
from conftest import REPO, Workflow, fork, sample_config, slurm_cluster, start_slurm_cluster

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]


@pytest.fixture(scope="module")
def slurm() -> Iterator[None]:
    """The test cluster (conftest's session fixture starts it): started here if it is not running
    (and stopped again), else skipped with the reason."""
    started, why_not = start_slurm_cluster()
    if why_not:
        pytest.skip(why_not)
    try:
        yield
    finally:
        if started:
            slurm_cluster("down")


class ClusterWorkflow(Workflow):
    """A workdir run with the SLURM profile, the test cluster's 'gpu' partition and short status waits."""

    def command(self, *args: str) -> list[str]:
        # The profile's options before the caller's, which may end with '--' and targets.
        return super().command(
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--slurm-init-seconds-before-status-checks",
            "2",
            "--latency-wait",
            "5",
            *args,
        )

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "BEIRFLOW_SLURM_PARTITION": "gpu"}
        result = subprocess.run(self.command(*args), capture_output=True, text=True, env=environment, cwd=self.root, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
            )
        return result


def _sacct(*fields: str, since: str = "now-2hours", duplicates: bool = False) -> list[dict[str, str]]:
    """One row per job (with ``duplicates``, one per run of a requeued job too)."""
    command = ["sacct", "-a", "-X", "-P", "-n", "-S", since, "-o", ",".join(fields), *(["-D"] if duplicates else [])]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("|"), strict=False)) for line in output.splitlines() if line]


def _on_gpus(config: dict) -> dict:
    """The cluster test's override: every model job asks for one of the node's (fake) GPUs; scores do not change."""
    for family in ("rerank", "dense"):
        for entry in config[family].values():
            entry["resources"] = {**entry.get("resources", {}), "gpus": 1}
    return config


@pytest.fixture(scope="module")
def on_cluster(slurm: None, tmp_path_factory: pytest.TempPathFactory) -> Workflow:
    workflow = ClusterWorkflow(tmp_path_factory.mktemp("slurm"), _on_gpus(sample_config()))
    workflow.since = time.strftime("%Y-%m-%dT%H:%M:%S")  # type: ignore[attr-defined]
    workflow.run()
    return workflow


def _metrics(workflow: Workflow) -> dict[tuple[str, str, str], str]:
    with open(workflow.path("results/leaderboard/leaderboard.csv"), encoding="utf-8") as handle:
        return {(row["dataset"], row["system"], row["metric"]): row["value"] for row in csv.DictReader(handle)}


def test_the_embedded_default_on_slurm_equals_the_local_run(on_cluster: Workflow, done: Workflow) -> None:
    assert _metrics(on_cluster) == _metrics(done)
    assert len(_metrics(on_cluster)) == 5 * 4


def test_its_jobs_are_in_sacct_and_the_gpu_rules_got_a_gpu(on_cluster: Workflow) -> None:
    import json

    jobs = {row["JobIDRaw"]: row for row in _sacct("JobIDRaw", "JobID", "State", "AllocTRES")}
    records = [
        on_cluster.path("results/scifact-sample/rerank/minilm-rerank/shards/0000.json"),
        *on_cluster.path("results/scifact-sample/embeddings").glob("*/**/*.json"),
    ]
    records.append(on_cluster.path("results/scifact-sample/dense/minilm/provenance.json"))
    for record in records:
        job_id = json.loads(record.read_text())["slurm_job_id"]
        assert job_id in jobs, f"{record}: job {job_id} is not in sacct"
        assert jobs[job_id]["State"] == "COMPLETED" and "gres/gpu=1" in jobs[job_id]["AllocTRES"], (record, jobs[job_id])
    bm25 = json.loads(on_cluster.path("results/scifact-sample/bm25/bm25-flat/provenance.json").read_text())
    assert "gres/gpu" not in jobs[bm25["slurm_job_id"]]["AllocTRES"]  # CPU rules ask for none


def test_the_sbatch_calls_are_those_the_plan_predicts(on_cluster: Workflow) -> None:
    """Measured on the cluster: one submission per non-local job, one per array of shards."""
    import sys

    submitted = {row["JobID"].split("_")[0] for row in _sacct("JobID", since=on_cluster.since)}  # type: ignore[attr-defined]
    plan = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "plan_grid.py"), "--configfile", str(on_cluster.config_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    predicted = int(next(line for line in plan.splitlines() if line.startswith("total")).split()[2])
    assert len(submitted) == predicted, plan


def test_the_cost_table_comes_from_slurm_accounting(on_cluster: Workflow) -> None:
    costs = read_costs(on_cluster.path("results/leaderboard/cost.csv"))
    assert sorted(cost.rule for cost in costs) == ["dense_search", "encode_documents", "encode_queries", "rerank_shard"]
    assert all(cost.source == "sacct" and cost.gpus == 1 and cost.gpu_seconds == cost.elapsed_s > 0 for cost in costs), costs
    import re

    total = sum(cost.gpu_seconds for cost in costs) / 3600
    shown = re.search(
        r"all GPU jobs together: (\d+\.\d{3}) GPU-hours", on_cluster.path("results/leaderboard/leaderboard.md").read_text()
    )
    # Within the printed rounding: a total such as 63 s = 0.0175 h sits on the rounding boundary, and
    # a sum of per-job hours and hours of the summed seconds may round it either way.
    assert shown and abs(float(shown.group(1)) - total) <= 0.0005 + 1e-9, (shown, total)


def _dense_only(**changes: object) -> dict:
    config = sample_config(bm25={"bm25-flat": {"fields": "flat"}}, rerank={}, fusion={}, shards={"documents_per_shard": 400})
    config["dense"]["minilm"].update(changes)
    return config


def _running_job(rule: str, process: subprocess.Popen, timeout_s: float = 240, besides: tuple[str, ...] = ()) -> str:
    """The SLURM job id of a running job of ``rule`` (the plugin names the rule in the job's comment), not one of ``besides``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the workflow ended before a {rule} job ran"
        running = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%A %k"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        for line in running:
            job_id, comment = ([*line.split(" ", 1), ""])[:2]
            if comment.startswith(f"rule_{rule}") and job_id not in besides:
                return job_id
        time.sleep(0.2)
    raise AssertionError(f"no {rule} job ran within {timeout_s} s")


@pytest.fixture(scope="module")
def dense_reference(tmp_path_factory: pytest.TempPathFactory) -> Workflow:
    """The fault tests' workflow, unfaulted and on this machine."""
    workflow = Workflow(tmp_path_factory.mktemp("dense-reference"), _dense_only())
    workflow.run()
    return workflow


def _cluster_fork(reference: Workflow, destination: Path, **changes: object) -> ClusterWorkflow:
    """A copy of the finished local reference, driven through the SLURM profile: a fault test forces only
    the job under test on the cluster, its inputs prepared here once."""
    fork(reference, destination)
    workflow = ClusterWorkflow(destination, _dense_only(**changes))
    assert workflow.planned_jobs() == {}, "a fork of a finished workdir plans no job"
    return workflow


def _encoder_outputs(reference: Workflow, kind: str) -> list[str]:
    """The reference's embeddings of ``kind`` ('corpus' shards or 'queries'), relative to its root: a fault
    test asks for these, so that only the faulted rule's jobs run on the cluster."""
    pattern = "*/corpus/*.npy" if kind == "corpus" else "*/queries.npy"
    found = sorted(reference.path("results/scifact-sample/embeddings").glob(pattern))
    assert found, pattern
    return [str(path.relative_to(reference.root)) for path in found]


def _same_outputs(workflow: Workflow, reference: Workflow, relative: list[str]) -> None:
    for path in relative:
        assert workflow.path(path).read_bytes() == reference.path(path).read_bytes(), path


def test_a_killed_encode_job_is_redone_and_the_leaderboard_equals_the_unfaulted_one(
    slurm: None, dense_reference: Workflow, tmp_path: Path
) -> None:
    reference = dense_reference
    workflow = _cluster_fork(reference, tmp_path / "faulted")
    process = subprocess.Popen(
        workflow.command("--retries", "0", "--forcerun", "encode_documents"),
        cwd=workflow.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "BEIRFLOW_SLURM_PARTITION": "gpu"},
    )
    try:
        job_id = _running_job("encode_documents", process)
        time.sleep(2)  # inside the job: loading the model or encoding
        subprocess.run(["scancel", "--signal=KILL", "--full", job_id], check=True)
        process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0  # without retries the killed job fails the run
    state = next(row["State"] for row in _sacct("JobIDRaw", "State") if row["JobIDRaw"] == job_id)
    assert state in ("CANCELLED", "FAILED") or state.startswith("CANCELLED"), state
    for half in workflow.path("results").rglob(".*.tmp-*"):
        final = half.with_name(half.name[1:].rsplit(".tmp-", 1)[0])
        assert not final.exists(), f"{final} exists though its job was killed while writing it"
    shards = sorted(reference.path("results/scifact-sample/embeddings").glob("*/corpus/*.npy"))
    assert len(shards) == 2
    # The shards by name (Snakemake does not rebuild a missing intermediate whose consumers are complete),
    # then everything: the search runs again on the new shards.
    workflow.run(*(str(shard.relative_to(reference.root)) for shard in shards), "all")
    for shard in shards:
        assert workflow.path(str(shard.relative_to(reference.root))).read_bytes() == shard.read_bytes(), shard
    assert _metrics(workflow) == _metrics(reference)


def test_a_job_out_of_memory_is_retried_with_more(slurm: None, dense_reference: Workflow, tmp_path: Path) -> None:
    """450 MB is too little to load MiniLM: SLURM kills the job, and the retry asks for 900 MB (mem_mb x attempt)."""
    import json

    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    workflow = _cluster_fork(dense_reference, tmp_path / "oom", resources={"gpus": 0, "mem_mb": 450, "runtime": 20})
    shards = _encoder_outputs(dense_reference, "corpus")
    workflow.run("--forcerun", "encode_documents", "--", *shards)
    _same_outputs(workflow, dense_reference, shards)
    jobs = _sacct("JobIDRaw", "JobID", "State", "ReqMem", since=since)
    # The first attempts ask for 450 MB (the plugin adds 1 MB to array jobs) and are killed.
    killed = [job for job in jobs if job["ReqMem"] in ("450M", "451M") and job["State"] != "COMPLETED"]
    assert killed and all(job["State"] in ("FAILED", "OUT_OF_MEMORY") for job in killed), jobs
    assert "exceeded memory limit" in Path("/var/log/beirflow-slurm/slurmd.log").read_text(errors="replace")
    for record in workflow.path("results/scifact-sample/embeddings").glob("*/corpus/*.json"):
        job_id = json.loads(record.read_text())["slurm_job_id"]
        finished = next(job for job in jobs if job["JobIDRaw"] == job_id)
        assert finished["State"] == "COMPLETED" and int(finished["ReqMem"].rstrip("M")) >= 900, finished
    assert any("_" in job["JobID"] for job in killed), killed  # the 2 document shards first went out as one job array


def test_a_node_set_down_mid_job_then_resumed_lets_the_workflow_finish(
    slurm: None, dense_reference: Workflow, tmp_path: Path
) -> None:
    node = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, check=True).stdout.split()[0]
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    workflow = _cluster_fork(dense_reference, tmp_path / "down")
    shards = _encoder_outputs(dense_reference, "corpus")
    process = subprocess.Popen(
        workflow.command("--forcerun", "encode_documents", "--", *shards),
        cwd=workflow.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BEIRFLOW_SLURM_PARTITION": "gpu"},
    )
    try:
        _running_job("encode_documents", process)
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
    _same_outputs(workflow, dense_reference, shards)
    runs = _sacct("JobIDRaw", "State", since=since, duplicates=True)
    assert any(job["State"] == "NODE_FAIL" for job in runs), runs  # the job on the node failed with it, and ran again


def _stop_job(job_id: str, timeout_s: float = 60) -> None:
    """SIGSTOP every process of the job: a job stuck (on a hung file system, say) that SLURM still counts as running.

    squeue says RUNNING before slurmd has started the batch step, when ``scontrol listpids`` still fails; and a
    process forked between listing and stopping escapes one pass, so the job is listed and stopped until a pass
    finds nothing left running."""
    deadline = time.monotonic() + timeout_s
    stopped: set[str] = set()
    while time.monotonic() < deadline:
        listed = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True, check=False)
        first_columns = (line.split()[:1] for line in listed.stdout.splitlines()[1:])  # PID JOBID STEPID LOCALID GLOBALID
        pids = {column[0] for column in first_columns if column and column[0].isdigit()}
        if listed.returncode == 0 and pids and pids <= stopped:
            return
        for pid in sorted(pids - stopped):
            subprocess.run(["kill", "-STOP", pid], capture_output=True, check=False)
            stopped.add(pid)
        time.sleep(0.5)
    raise AssertionError(f"the processes of job {job_id} could not be listed and stopped within {timeout_s} s")


def test_jobs_cancelled_with_scancel_or_by_their_time_limit_are_seen_as_failed_and_retried(
    slurm: None, dense_reference: Workflow, tmp_path: Path
) -> None:
    """sacct says 'CANCELLED by 0' after scancel; the plugin alone (2.8.0) waited for such a job forever.
    A job stuck past its time limit (1 minute here) ends TIMEOUT, is seen as failed and retried."""
    workflow = _cluster_fork(dense_reference, tmp_path / "cancelled")
    queries = _encoder_outputs(dense_reference, "queries")
    command = workflow.command(
        "--retries", "3", "--set-resources", "encode_queries:runtime=1", "--forcerun", "encode_queries", "--", *queries
    )  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=workflow.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BEIRFLOW_SLURM_PARTITION": "gpu"},
    )
    ended: list[str] = []
    try:
        # encode_queries, not an array task: 'scancel <id>' of a job array's first task id would cancel the array.
        for scancel in (["scancel"], ["scancel", "--full"]):  # what a user or an admin does to a stuck job
            ended.append(_running_job("encode_queries", process, besides=tuple(ended)))
            subprocess.run([*scancel, ended[-1]], check=True)
        ended.append(_running_job("encode_queries", process, besides=tuple(ended)))
        _stop_job(ended[-1])
        output, _ = process.communicate(timeout=480)  # hangs (and fails here) where an ended job goes unseen
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-5000:]
    states = {row["JobIDRaw"]: row["State"] for row in _sacct("JobIDRaw", "State")}
    assert [states[job_id] for job_id in ended] == ["CANCELLED by 0", "CANCELLED by 0", "TIMEOUT"], (ended, states)
    assert output.count("SLURM status is: 'CANCELLED'") == 2, output[-5000:]
    assert output.count("SLURM status is: 'TIMEOUT'") == 1, output[-5000:]
    _same_outputs(workflow, dense_reference, queries)
