"""Helpers of the SLURM test modules (test_slurm.py, test_slurm_faults.py): a workdir driven through the
SLURM profile, this workdir's jobs in squeue and sacct, and turns on the one test node.

The two modules run side by side on two pytest-xdist workers (most of their time is waiting on the
cluster), so a test finds its own jobs by their working directory, never by rule or time alone, and
the test that sets the node DOWN (which fails every job on it) runs while no other test uses the node.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import REPO, Workflow, fork


class ClusterWorkflow(Workflow):
    """A workdir run with the SLURM profile, the test cluster's 'gpu' partition and short status waits."""

    def command(self, *args: str) -> list[str]:
        # The profile's options before the caller's, which may end with '--' and targets.
        return super().command(
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--slurm-init-seconds-before-status-checks",
            "2",
            "--max-status-checks-per-second",  # the profile's 0.1 protects a busy controller; this one is idle
            "10",
            "--latency-wait",
            "5",
            *args,
        )

    @property
    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", "BEIRFLOW_SLURM_PARTITION": "gpu"}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, env=self.environment, cwd=self.root, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
            )
        return result

    def start(self, *args: str, output: bool = True) -> subprocess.Popen[str]:
        """The workflow in the background (its output piped unless ``output`` is False), for a test to fault its jobs."""
        sink = subprocess.PIPE if output else subprocess.DEVNULL
        return subprocess.Popen(
            self.command(*args), cwd=self.root, stdout=sink, stderr=subprocess.STDOUT, text=True, env=self.environment
        )


def sacct(*fields: str, workdir: Path, since: str = "now-2hours", duplicates: bool = False) -> list[dict[str, str]]:
    """One row per job submitted from ``workdir`` (with ``duplicates``, one per run of a requeued job too)."""
    columns = (*fields, "WorkDir")
    command = ["sacct", "-a", "-X", "-P", "-n", "-S", since, "-o", ",".join(columns), *(["-D"] if duplicates else [])]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(columns, line.split("|"), strict=False)) for line in output.splitlines() if line]
    return [{field: row[field] for field in fields} for row in rows if row.get("WorkDir") == str(workdir)]


def running_job(
    rule: str, process: subprocess.Popen[str], workdir: Path, timeout_s: float = 600, besides: tuple[str, ...] = ()
) -> str:
    """The SLURM job id of a running job of ``rule`` submitted from ``workdir`` (the plugin names the rule in
    the job's comment), not one of ``besides``. It may wait behind the other SLURM module's jobs on the one
    node: on a slow CI machine that module's first workflow held the node for 17 minutes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the workflow ended before a {rule} job ran"
        running = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%A|%k|%Z"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        for line in running:
            job_id, comment, job_workdir = ([*line.split("|", 2), "", ""])[:3]
            if comment.startswith(f"rule_{rule}") and job_workdir == str(workdir) and job_id not in besides:
                return job_id
        time.sleep(0.2)
    raise AssertionError(f"no {rule} job ran within {timeout_s} s")


class NodeTurns:
    """Turns on the test node, across xdist workers: tests share it, one that faults the node has it alone.

    flock lets new sharers in while an exclusive lock waits, so one who wants the node alone first
    leaves a mark that holds back new sharers until it has the node."""

    def __init__(self, folder: Path) -> None:
        self.lock_path = folder / "slurm-node.lock"
        self.wanted_alone = folder / "slurm-node.wanted-alone"

    @contextmanager
    def shared(self) -> Iterator[None]:
        while self.wanted_alone.exists():
            time.sleep(0.5)
        with self._locked(fcntl.LOCK_SH):
            yield

    @contextmanager
    def alone(self) -> Iterator[None]:
        self.wanted_alone.touch()
        try:
            with self._locked(fcntl.LOCK_EX):
                self.wanted_alone.unlink(missing_ok=True)
                yield
        finally:
            self.wanted_alone.unlink(missing_ok=True)

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        with open(self.lock_path, "a+b") as handle:
            fcntl.flock(handle, mode)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# ---- the fault tests: copies of conftest's finished dense workflow, forced on the cluster


def cluster_fork(reference: Workflow, destination: Path, **changes: object) -> ClusterWorkflow:
    """A copy of the finished local reference, driven through the SLURM profile: a fault test forces only
    the job under test on the cluster, its inputs prepared here once."""
    fork(reference, destination)
    config = reference.config
    config["dense"]["minilm"].update(changes)
    workflow = ClusterWorkflow(destination, config)
    assert workflow.planned_jobs() == {}, "a fork of a finished workdir plans no job"
    return workflow


def encoder_outputs(reference: Workflow, kind: str) -> list[str]:
    """The reference's embeddings of ``kind`` ('corpus' shards or 'queries'), relative to its root: a fault
    test asks for these, so that only the faulted rule's jobs run on the cluster."""
    pattern = "*/corpus/*.npy" if kind == "corpus" else "*/queries.npy"
    found = sorted(reference.path("results/scifact-sample/embeddings").glob(pattern))
    assert found, pattern
    return [str(path.relative_to(reference.root)) for path in found]


def same_outputs(workflow: Workflow, reference: Workflow, relative: list[str]) -> None:
    for path in relative:
        assert workflow.path(path).read_bytes() == reference.path(path).read_bytes(), path
