"""What the runs cost: every GPU-rule job's elapsed time and GPU-seconds, per dataset and system.

Each GPU job (rerank shards, encodings, dense searches) records its SLURM job id, when it ran under
SLURM, in its sidecar or provenance file. Its elapsed time and allocated GPUs then come from SLURM's
own accounting (``sacct``: ``ElapsedRaw``, the ``gres/gpu`` count of ``AllocTRES``); GPU-seconds are
their product. A job run without SLURM has Snakemake's ``benchmark:`` file instead: the wall time
``s``, times the GPUs it ran on (none on a CPU).
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

COLUMNS = ("dataset", "system", "rule", "job", "slurm_job_id", "elapsed_s", "gpus", "gpu_seconds", "source")


@dataclass(frozen=True)
class JobRecord:
    """One GPU-rule job as the workflow knows it, before accounting is asked."""

    dataset: str
    systems: tuple[str, ...]  # an encoding serves every system on its encoder
    rule: str
    job: str  # unique within the rule: '<system>/<shard>', '<encoder>/<shard>', '<encoder>/queries', '<system>'
    slurm_job_id: str | None
    benchmark_s: float | None
    gpus_on_device: int  # GPUs the job ran on (0 on a CPU), from its own record


@dataclass(frozen=True)
class JobCost:
    dataset: str
    system: str
    rule: str
    job: str
    slurm_job_id: str
    elapsed_s: float
    gpus: int
    gpu_seconds: float
    source: str  # 'sacct' or 'benchmark'


def sacct_usage(job_ids: Iterable[str]) -> dict[str, tuple[float, int]]:
    """Elapsed seconds and allocated GPUs per job id; jobs sacct does not know are missing."""
    ids = sorted({job_id for job_id in job_ids if job_id})
    if not ids:
        return {}
    try:
        result = subprocess.run(
            ["sacct", "-X", "-P", "-n", "-j", ",".join(ids), "-o", "JobIDRaw,ElapsedRaw,AllocTRES"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return {}
    usage = {}
    for line in result.stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        job_id, elapsed, tres = parts
        match = re.search(r"gres/gpu(?::[^=,]+)?=(\d+)", tres)
        usage[job_id] = (float(elapsed), int(match.group(1)) if match else 0)
    return usage


def job_costs(records: Sequence[JobRecord], usage: dict[str, tuple[float, int]]) -> list[JobCost]:
    """One row per job and system it served; accounting wins over the benchmark file where it answers."""
    costs = []
    for record in records:
        if record.slurm_job_id and record.slurm_job_id in usage:
            elapsed, gpus = usage[record.slurm_job_id]
            source = "sacct"
        elif record.benchmark_s is not None:
            elapsed, gpus, source = record.benchmark_s, record.gpus_on_device, "benchmark"
        else:  # run before benchmark files were kept, and not under SLURM
            elapsed, gpus, source = 0.0, record.gpus_on_device, "unknown"
        for system in record.systems:
            costs.append(
                JobCost(
                    record.dataset,
                    system,
                    record.rule,
                    record.job,
                    record.slurm_job_id or "",
                    elapsed,
                    gpus,
                    elapsed * gpus,
                    source,
                )
            )
    return costs


def to_csv(costs: Sequence[JobCost]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for cost in costs:
        row = list(astuple(cost))
        row[5], row[7] = f"{cost.elapsed_s:.1f}", f"{cost.gpu_seconds:.1f}"
        writer.writerow(row)
    return buffer.getvalue()


def read_costs(path: Path) -> list[JobCost]:
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    types = {field.name: field.type for field in fields(JobCost)}
    converted = []
    for row in rows:
        values = {
            name: (float(row[name]) if types[name] == "float" else int(row[name]) if types[name] == "int" else row[name])
            for name in types
        }
        converted.append(JobCost(**values))  # type: ignore[arg-type]
    return converted


def gpu_hours(costs: Sequence[JobCost]) -> tuple[dict[tuple[str, str], float], float]:
    """GPU-hours per (dataset, system), and the total over distinct jobs (a shared encoding counts once)."""
    per_system: dict[tuple[str, str], float] = {}
    distinct: dict[tuple[str, str, str], float] = {}
    for cost in costs:
        per_system[(cost.dataset, cost.system)] = per_system.get((cost.dataset, cost.system), 0.0) + cost.gpu_seconds / 3600
        distinct[(cost.dataset, cost.rule, cost.job)] = cost.gpu_seconds / 3600
    return per_system, sum(distinct.values())
