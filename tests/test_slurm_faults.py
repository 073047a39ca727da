"""Faults on the real single-node SLURM cluster (.ci/slurm-cluster): a job killed, cancelled with scancel,
and stopped past its time limit (out of memory and the node set DOWN are in test_slurm.py, which runs
beside this module; tests/cluster.py says how they share the node). Each test works on a copy of one
finished local run (conftest's ``dense``) and forces only the faulted rule's jobs on the cluster; their
outputs must equal the unfaulted run's byte for byte."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from cluster import NodeTurns, cluster_fork, encoder_outputs, running_job, sacct, same_outputs
from conftest import Workflow, final_of, temporaries

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]


def test_a_killed_encode_job_leaves_no_shard_that_looks_done_and_the_rerun_equals_the_unfaulted_one(
    slurm: None, node_turns: NodeTurns, dense: Workflow, tmp_path: Path
) -> None:
    workflow = cluster_fork(dense, tmp_path / "faulted")
    shards = encoder_outputs(dense, "corpus")[:1]  # one job: the array's retries are the out-of-memory test's
    with node_turns.shared():
        process = workflow.start("--retries", "0", "--forcerun", *shards, "--", *shards, output=False)
        try:
            job_id = running_job("encode_documents", process, workflow.root)
            time.sleep(2)  # inside the job: loading the model or encoding
            subprocess.run(["scancel", "--signal=KILL", "--full", job_id], check=True)
            process.wait(timeout=600)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode != 0  # without retries the killed job fails the run
        state = next(row["State"] for row in sacct("JobIDRaw", "State", workdir=workflow.root) if row["JobIDRaw"] == job_id)
        assert state in ("CANCELLED", "FAILED") or state.startswith("CANCELLED"), state
        for half in temporaries(workflow.root):
            final = final_of(half)
            assert not final.exists(), f"{final} exists though its job was killed while writing it"
        workflow.run("--", *shards)
    same_outputs(workflow, dense, shards)
    # What the killed job would have fed is planned again: the search and everything after it.
    assert "dense_search" in workflow.planned_jobs()


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


def _end_or_explain(process: subprocess.Popen[str], workdir: Path, timeout_s: float) -> str:
    """The workflow's output once it ends; if it has not ended within ``timeout_s``, an error with what it
    printed last and what the cluster says of its jobs (a job pending behind another workflow's is slow,
    one that sacct shows ended is unseen)."""
    try:
        output, _ = process.communicate(timeout=timeout_s)
        return output
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        jobs = sacct("JobIDRaw", "State", "Submit", "Start", "End", "Timelimit", workdir=workdir)
        queue = subprocess.run(["squeue", "-h", "-o", "%A|%T|%M|%l|%k|%Z"], capture_output=True, text=True, check=False).stdout
        raise AssertionError(
            f"the workflow had not ended after {timeout_s} s\nsacct: {jobs}\nsqueue:\n{queue}\n{output[-6000:]}"
        ) from None


def test_jobs_cancelled_with_scancel_or_by_their_time_limit_are_seen_as_failed_and_retried(
    slurm: None, node_turns: NodeTurns, dense: Workflow, tmp_path: Path
) -> None:
    """sacct says 'CANCELLED by 0' after scancel; the plugin alone (2.8.0) waited for such a job forever.
    A job stuck past its time limit ends TIMEOUT, is seen as failed and retried. Only the stuck job's limit
    is lowered (to SLURM's least, a minute), so the retry keeps the rule's own limit however slow the machine."""
    workflow = cluster_fork(dense, tmp_path / "cancelled")
    queries = encoder_outputs(dense, "queries")
    ended: list[str] = []
    with node_turns.shared():
        process = workflow.start("--retries", "3", "--forcerun", "encode_queries", "--", *queries)
        try:
            # encode_queries, not an array task: 'scancel <id>' of a job array's first task id would cancel the array.
            for scancel in (["scancel"], ["scancel", "--full"]):  # what a user or an admin does to a stuck job
                ended.append(running_job("encode_queries", process, workflow.root, besides=tuple(ended)))
                subprocess.run([*scancel, ended[-1]], check=True)
            ended.append(running_job("encode_queries", process, workflow.root, besides=tuple(ended)))
            _stop_job(ended[-1])
            subprocess.run(["scontrol", "update", f"JobId={ended[-1]}", "TimeLimit=1"], check=True)
            # A job that ended unseen hangs the workflow for ever; a seen one ends it within the plugin's
            # longest status wait (180 s) of the retry's end, the retry perhaps queued behind test_slurm.py's jobs.
            output = _end_or_explain(process, workflow.root, timeout_s=900)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, output[-5000:]
    states = {row["JobIDRaw"]: row["State"] for row in sacct("JobIDRaw", "State", workdir=workflow.root)}
    assert [states[job_id] for job_id in ended] == ["CANCELLED by 0", "CANCELLED by 0", "TIMEOUT"], (ended, states)
    assert output.count("SLURM status is: 'CANCELLED'") == 2, output[-5000:]
    assert output.count("SLURM status is: 'TIMEOUT'") == 1, output[-5000:]
    same_outputs(workflow, dense, queries)
