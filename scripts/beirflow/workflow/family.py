"""A family of systems, declared once in code: its record says what the planner, plan_grid.py, the cost
table and the report need to know of it, so that none of them names a family.

A family is a config section of systems (``bm25``, ``rerank``, ...), the rules that run them
(``workflow/rules/<family>.smk``) and its record, ``FAMILY`` in ``beirflow/workflow/families/<family>.py``.
``families()`` finds every record there, in pipeline order.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from beirflow.workflow.dataset_plan import DatasetPlan
from beirflow.workflow.errors import ConfigError

Entries = Mapping[str, Mapping[str, Any]]  # system -> its config entry
JobFile = Callable[[str, str, "str | None"], str]  # (dataset, unit, shard) -> a job's file


@dataclass(frozen=True)
class FamilyRule:
    """One rule of a family."""

    name: str
    per: str = "system"  # what one job is for: 'system', or 'encoder' where systems share one
    local: bool = False  # runs on the submit host
    array: bool = False  # its shards go to SLURM as job arrays
    shards: str | None = None  # 'queries' or 'documents': one job per shard of that axis
    record: JobFile | None = None  # the record each job writes, read by the cost table
    benchmark: JobFile | None = None  # Snakemake's benchmark file of each job


def unit_key(identity: Mapping[str, Any]) -> str:
    """A folder name for a shared unit (an encoder's outputs): the model's readable name, then a hash of the
    identity, so that a change to anything in it makes a new folder."""
    canonical = json.dumps(identity, sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
    tail = str(identity["model"]).rstrip("/").replace("package:", "").rsplit("/", 1)[-1]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", tail).strip("-.") or "model"
    return f"{readable[:60]}-{digest}"


@dataclass(frozen=True)
class SharedUnit:
    """Work that several systems of a family share (an encoder's embeddings): done once for all of them."""

    key: str
    identity: dict[str, Any]
    systems: tuple[str, ...]  # in config order
    keeps_output: bool = True  # False when every system sharing it asks for its output to be deleted once read


def shared_by_identity(
    entries: Entries, identity_of: Callable[[str, Mapping[str, Any]], dict[str, Any]]
) -> dict[str, SharedUnit]:
    """Systems whose ``identity_of(name, entry)`` is the same share one unit, keyed by :func:`unit_key`; a unit's
    output is kept unless every system sharing it says ``keep_embeddings: false``."""
    grouped: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for name, entry in entries.items():
        identity = identity_of(name, entry)
        grouped.setdefault(unit_key(identity), (identity, []))[1].append(name)
    return {
        key: SharedUnit(key, identity, tuple(names), any(entries[name].get("keep_embeddings", True) for name in names))
        for key, (identity, names) in grouped.items()
    }


def check_pinned(section: str, entries: Entries, models: tuple[tuple[str, str], ...] = (("model", "revision"),)) -> None:
    """Every Hugging Face model (and adapter) an entry names is pinned to a commit by its revision key."""
    from beirflow.models.loading import is_hub_name, unpinned_hub_problem

    for name, entry in entries.items():
        for model_key, revision_key in models:
            model = entry.get(model_key)
            if model and is_hub_name(model) and not entry.get(revision_key):
                raise ConfigError(f"{section}.{name}.{revision_key}: {unpinned_hub_problem(model)}")


@dataclass(frozen=True)
class Grid:
    """What a family's cost functions read of the plan: the datasets, where each system runs, the
    families' entries and their shared units."""

    config: dict[str, Any]
    datasets: dict[str, DatasetPlan]
    sections: dict[str, dict[str, dict[str, Any]]]  # family -> system -> entry
    datasets_of: dict[str, tuple[str, ...]]  # system -> the datasets it runs on
    units: dict[str, dict[str, SharedUnit]]  # family -> key -> shared unit


@dataclass(frozen=True)
class ModelWork:
    """What one model processes over the grid, for its GPU-hours: ``count`` units at a measured rate."""

    systems: str
    model: str
    kind: str  # the throughput table's kind
    precision: str
    count: int
    unit: str  # 'pairs', 'documents'
    gpus: int


@dataclass(frozen=True)
class DiskRow:
    stage: str
    size: int | None  # bytes, None where unknown
    basis: str
    deleted_after_search: bool = False  # an output deleted once read (keep_embeddings: false)
    embeddings: bool = False  # a shared unit's output that may be kept or deleted


@dataclass(frozen=True)
class FamilyCost:
    """What plan_grid.py prices for a family. Each function gets the grid and the folder of fetch records."""

    gpu_work: Callable[[Grid], list[ModelWork]] | None = None
    disk: Callable[[Grid, Path], list[DiskRow]] | None = None
    job_memory: Callable[[Grid], list[tuple[str, str, int]]] | None = None  # (rule, system, mem_mb) first attempts
    run_hits: Callable[[Mapping[str, Any]], int] = lambda entry: int(entry.get("hits", 1000))
    run_copies: int = 1  # run files per system and dataset as big as the run (shards beside the merged run)


@dataclass(frozen=True)
class FamilyReport:
    """How the report shows a family's systems."""

    noun: str  # written after a system's label in the report
    role: str  # what the findings compare it as: reranker, dense retriever, sparse retriever, first stage, fusion
    markers: tuple[str, ...] = ("s", "^", ">")
    line: str = "--"


@dataclass(frozen=True)
class Family:
    """A config section of systems and the rules that run them."""

    name: str
    position: int  # pipeline order: rule files included, sections planned and listed in this order
    run_rule: str  # writes results/{dataset}/<family>/{system}/run.trec and provenance.json
    rules: tuple[FamilyRule, ...]
    report: FamilyReport
    models: bool = False  # entries name models: fetched by rule fetch_model, cited by the report
    reads: tuple[str, ...] = ()  # entry keys that name upstream systems (one name, or a list)
    operational_keys: tuple[str, ...] = ()  # entry keys that never change a result (beside the common ones)
    check: Callable[[Entries, Mapping[str, str]], None] | None = None  # cross-checks of its entries
    shared_units: Callable[[Entries], dict[str, SharedUnit]] | None = None
    final_targets: Callable[[Grid], list[str]] | None = None  # files 'rule all' asks for beside the runs (markers)
    cost: FamilyCost = field(default_factory=FamilyCost)

    @property
    def recorded_rules(self) -> tuple[FamilyRule, ...]:
        return tuple(rule for rule in self.rules if rule.record)

    def upstream(self, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(key, system) of each system this entry reads."""
        found = []
        for key in self.reads:
            value = entry.get(key)
            for name in [value] if isinstance(value, str) else list(value or []):
                found.append((key, name))
        return found

    def stacked_on(self, entry: Mapping[str, Any]) -> str | None:
        """The one system this entry's results are built on, when it reads exactly one (a reranker's first stage)."""
        upstream = self.upstream(entry)
        return upstream[0][1] if len(upstream) == 1 and isinstance(entry.get(upstream[0][0]), str) else None


@cache
def families() -> dict[str, Family]:
    """Every family record under beirflow/workflow/families/, in pipeline order."""
    import beirflow.workflow.families as package

    found = []
    for module in pkgutil.iter_modules(package.__path__):
        record = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "FAMILY", None)
        if isinstance(record, Family):
            if record.name != module.name:
                raise ConfigError(f"beirflow/workflow/families/{module.name}.py: its FAMILY is named '{record.name}'")
            found.append(record)
    return {family.name: family for family in sorted(found, key=lambda family: (family.position, family.name))}


def corpus_bytes_row(stage: str, ratio: float, datasets: Sequence[DatasetPlan]) -> DiskRow:
    """An output that grows with the corpus file's bytes, at a ratio measured on the sample."""
    corpora = [dataset.files.corpus for dataset in datasets]
    present = [path for path in corpora if path.is_file()]
    if len(present) == len(corpora):
        size = sum(path.stat().st_size for path in present)
        return DiskRow(stage, int(size * ratio), f"{size / 1e9:.2f} GB of corpus files x {ratio} (measured on the sample)")
    missing = len(corpora) - len(present)
    return DiskRow(
        stage,
        None,
        f"unknown: {missing} of {len(corpora)} corpora not downloaded yet (x {ratio} of their bytes, measured on the sample)",
    )
