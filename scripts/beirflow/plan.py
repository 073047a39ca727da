"""Turn the validated config into what the DAG is built from: datasets, systems and shard counts.

This runs every time Snakemake parses the workflow, so it reads no corpus for BEIR names
(their counts are known) and counts lines of local files at most once per process.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from beirflow.beir import QRELS_HEADER_IDS, BeirFiles
from beirflow.registry import BEIR_ZERO_SHOT, CQADUPSTACK, beir_archives, beir_datasets, expand_beir_name
from beirflow.settings import OPERATIONAL_KEYS

MAX_SHARDS = 10_000  # shard ids are four digits


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset of the run: where its BEIR-layout folder is and which split is evaluated."""

    name: str
    split: str
    folder: Path
    archive: str | None  # the BEIR zip to download first; None for a local folder
    documents: int | None = None  # declared counts of a local folder (config 'documents', 'queries')
    queries: int | None = None
    merged_forums: bool = False  # CQADupStack's 12 forums as one corpus and query set, built from the archive
    beir_name: str | None = None  # the BEIR dataset it is (or samples): forums and merged are 'cqadupstack'

    @property
    def files(self) -> BeirFiles:
        return BeirFiles(self.folder, self.split)

    @property
    def is_local(self) -> bool:
        return self.archive is None

    def document_count(self) -> int:
        if self.documents is not None:
            return self.documents
        if self.merged_forums:
            return sum(beir_datasets()[forum].documents for forum in expand_beir_name(CQADUPSTACK))
        if self.archive is not None:
            return beir_datasets()[self.name].documents
        return _cached_count("documents", self.files.corpus, _count_lines)

    def query_count(self) -> int:
        """Queries judged in the split: the queries that are searched and sharded."""
        if self.queries is not None:
            return self.queries
        if self.merged_forums:
            return sum(beir_datasets()[forum].query_count(self.split) for forum in expand_beir_name(CQADUPSTACK))
        if self.archive is not None:
            return beir_datasets()[self.name].query_count(self.split)
        return _cached_count("queries", self.files.qrels, _count_judged_queries)


# Counts of local folders without declared counts, kept between starts: counting a large
# corpus's lines takes seconds to minutes, and the plan is built on every start.
COUNT_CACHE = Path(".snakemake") / "beirflow-dataset-counts.json"


def _cached_count(what: str, path: Path, count: Callable[[str], int]) -> int:
    stat = path.stat()
    key = f"{what}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    cache = _read_count_cache()
    if key not in cache:
        cache[key] = count(str(path))
        try:
            COUNT_CACHE.parent.mkdir(parents=True, exist_ok=True)
            temporary = COUNT_CACHE.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(cache, sort_keys=True), encoding="utf-8")
            os.replace(temporary, COUNT_CACHE)
        except OSError:
            pass  # a read-only working directory only costs a recount next time
    return int(cache[key])


def _read_count_cache() -> dict[str, int]:
    try:
        return dict(json.loads(COUNT_CACHE.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


@cache
def _count_lines(path: str) -> int:
    count = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


@cache
def _count_judged_queries(path: str) -> int:
    queries = set()
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            query_id = line.split("\t", 1)[0].strip()
            if query_id and not (number == 1 and query_id.lower() in QRELS_HEADER_IDS):
                queries.add(query_id)
    return len(queries)


class ConfigError(ValueError):
    """A config that is valid under the schema but names something that does not exist."""


def plan_datasets(datasets: dict[str, Any], data_dir: str | os.PathLike[str]) -> dict[str, DatasetPlan]:
    """Resolve the config's ``datasets`` section: BEIR names, CQADupStack's forums and local folders."""
    catalogue = beir_datasets()
    plans: dict[str, DatasetPlan] = {}
    for key, entry in datasets.items():
        entry = entry or {}
        if "path" in entry:
            split = entry.get("split", "test")
            beir_name = entry.get("beir", key if key in BEIR_ZERO_SHOT or key in catalogue else None)
            _add(
                plans,
                DatasetPlan(
                    key,
                    split,
                    Path(entry["path"]),
                    archive=None,
                    documents=entry.get("documents"),
                    queries=entry.get("queries"),
                    beir_name=beir_name,
                ),
            )
            continue
        beir_name = entry.get("beir", key)
        for counted in ("documents", "queries"):
            if counted in entry:
                raise ConfigError(
                    f"datasets.{key}.{counted}: counts are declared for local folders ('path') only; BEIR's are known"
                )
        members = expand_beir_name(beir_name)
        if any(member not in catalogue for member in members):
            known = ", ".join(sorted(beir_archives()))
            raise ConfigError(
                f"datasets.{key}: '{beir_name}' is not a BEIR dataset with a public download ({known}); give a local folder with 'path:'"
            )
        if entry.get("merge_forums"):
            if beir_name != CQADUPSTACK:
                raise ConfigError(f"datasets.{key}.merge_forums: only CQADupStack has forums to merge, not '{beir_name}'")
            # One corpus and one query set over the 12 forums (the paper's way), built from the archive.
            if entry.get("split", "test") != "test":
                raise ConfigError(f"datasets.{key}.split: CQADupStack has a test split only")
            _add(
                plans,
                DatasetPlan(
                    key, "test", Path(data_dir) / "merged" / key, archive=CQADUPSTACK, merged_forums=True, beir_name=CQADUPSTACK
                ),
            )
            continue
        for member in members:
            known_dataset = catalogue[member]
            split = entry.get("split", known_dataset.default_split)
            known_dataset.query_count(split)  # raises on an unknown split
            folder = Path(data_dir) / known_dataset.archive / known_dataset.subfolder
            _add(plans, DatasetPlan(member, split, folder, archive=known_dataset.archive, beir_name=beir_name))
    return plans


def _add(plans: dict[str, DatasetPlan], plan: DatasetPlan) -> None:
    if plan.name in plans:
        raise ConfigError(f"datasets: '{plan.name}' is named twice")
    plans[plan.name] = plan


def shard_count(items: int, per_shard: int) -> int:
    if per_shard < 1:
        raise ValueError("shard size must be at least 1")
    count = max(1, math.ceil(items / per_shard))
    if count > MAX_SHARDS:
        raise ConfigError(
            f"{items} items in shards of {per_shard} make {count} shards; at most {MAX_SHARDS}: raise the shard size"
        )
    return count


def shard_ids(count: int) -> list[str]:
    return [shard_name(index) for index in range(count)]


def shard_name(index: int) -> str:
    return f"{index:04d}"


def plan_systems(families: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Map each system name to its family ('bm25', later 'rerank', 'dense'); names are unique."""
    owner: dict[str, str] = {}
    for family, systems in families.items():
        for system in systems or {}:
            if system in owner:
                raise ConfigError(f"system '{system}' is defined under both '{owner[system]}' and '{family}'")
            owner[system] = family
    return owner


_KIND_KEYS = {
    "monot5": {"truncation", "template"},
    "bi-encoder": {"pooling", "normalize", "similarity", "query_prefix", "document_prefix"},
    "cross-encoder": {"adapter", "adapter_revision", "query_template", "document_template"},
}


def result_params(entry: dict[str, Any]) -> dict[str, Any]:
    """A system's entry without its operational keys: what its rule params hold."""
    return {key: value for key, value in entry.items() if key not in OPERATIONAL_KEYS}


def check_rerankers(rerankers: dict[str, dict[str, Any]], systems: dict[str, str]) -> None:
    """First stages exist and form no cycle; keys fit the kind; hub models are pinned."""
    from beirflow.models import is_hub_name, unpinned_hub_problem

    every_kind_key = set().union(*_KIND_KEYS.values())
    for name, entry in rerankers.items():
        key = f"rerank.{name}"
        first = entry["first_stage"]
        if first not in systems:
            raise ConfigError(f"{key}.first_stage: '{first}' is not a configured system (known: {', '.join(sorted(systems))})")
        misplaced = sorted((every_kind_key - _KIND_KEYS[entry["kind"]]) & entry.keys())
        if misplaced:
            raise ConfigError(f"{key}.{misplaced[0]}: not a key of a '{entry['kind']}' reranker")
        template = entry.get("template")
        if template is not None and ("{query}" not in template or "{document}" not in template):
            raise ConfigError(f"{key}.template: must contain {{query}} and {{document}}")
        if is_hub_name(entry["model"]) and not entry.get("revision"):
            raise ConfigError(f"{key}.revision: {unpinned_hub_problem(entry['model'])}")
        if entry.get("adapter") and is_hub_name(entry["adapter"]) and not entry.get("adapter_revision"):
            raise ConfigError(f"{key}.adapter_revision: {unpinned_hub_problem(entry['adapter'])}")
    for name in rerankers:
        first_stage_chain(name, rerankers)


def check_dense(dense: dict[str, dict[str, Any]]) -> None:
    """Hub models are pinned to a commit."""
    from beirflow.models import is_hub_name, unpinned_hub_problem

    for name, entry in dense.items():
        if is_hub_name(entry["model"]) and not entry.get("revision"):
            raise ConfigError(f"dense.{name}.revision: {unpinned_hub_problem(entry['model'])}")


def check_fusion(fusion: dict[str, dict[str, Any]], systems: dict[str, str]) -> None:
    """The fused runs exist, are distinct, form no cycle, and weights match them."""
    for name, entry in fusion.items():
        key = f"fusion.{name}"
        runs = entry["runs"]
        for run in runs:
            if run not in systems:
                raise ConfigError(f"{key}.runs: '{run}' is not a configured system (known: {', '.join(sorted(systems))})")
        weights = (entry.get("params") or {}).get("weights")
        if weights is not None and len(weights) != len(runs):
            raise ConfigError(f"{key}.params.weights: {len(weights)} weights for {len(runs)} runs")


def check_cycles(rerankers: dict[str, dict[str, Any]], fusion: dict[str, dict[str, Any]]) -> None:
    """No system depends on itself through rerankers' first stages and fusions' runs."""
    inputs = {name: [entry["first_stage"]] for name, entry in rerankers.items()}
    inputs.update({name: list(entry["runs"]) for name, entry in fusion.items()})
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            key = f"rerank.{cycle[0]}.first_stage" if cycle[0] in rerankers else f"fusion.{cycle[0]}.runs"
            raise ConfigError(f"{key}: the systems form a cycle ({' -> '.join(cycle)})")
        if name in done:
            return
        for upstream in inputs.get(name, []):
            visit(upstream, [*path, name])
        done.add(name)

    for name in inputs:
        visit(name, [])


def first_stage_chain(system: str, rerankers: dict[str, dict[str, Any]]) -> list[str]:
    """``['bm25-flat', 'monot5-base', 'monot5-3b']`` for a cascade; a system that reranks nothing is alone."""
    chain = [system]
    while chain[0] in rerankers:
        first = rerankers[chain[0]]["first_stage"]
        if first in chain:
            forward = [*reversed(chain), first]
            cycle = " -> ".join(forward[forward.index(first) :])
            raise ConfigError(f"rerank.{system}.first_stage: the rerankers form a cycle ({cycle})")
        chain.insert(0, first)
    return chain


def enabled_systems(section: dict[str, Any] | None) -> dict[str, Any]:
    """A family's systems without those marked ``enabled: false``."""
    return {name: entry for name, entry in (section or {}).items() if (entry or {}).get("enabled", True)}


def system_datasets(families: dict[str, dict[str, Any]], datasets: Iterable[str]) -> dict[str, list[str]]:
    """Each system's datasets: its ``datasets`` list (BEIR names expanded), else all of them.

    A reranker runs only where its first stage runs, a fusion only where all its runs do.
    """
    planned = list(datasets)
    chosen: dict[str, list[str]] = {}
    for family, systems in families.items():
        for name, entry in systems.items():
            listed = entry.get("datasets")
            if listed is None:
                chosen[name] = planned
                continue
            wanted = {member for item in listed for member in ([item] if item in planned else expand_beir_name(item))}
            unknown = sorted(wanted - set(planned))
            if unknown:
                raise ConfigError(
                    f"{family}.{name}.datasets: '{unknown[0]}' is not a configured dataset (known: {', '.join(planned)})"
                )
            chosen[name] = [dataset for dataset in planned if dataset in wanted]
    for family, key, inputs in (
        ("rerank", "first_stage", lambda entry: [entry["first_stage"]]),
        ("fusion", "runs", lambda entry: list(entry["runs"])),
    ):
        for name, entry in families.get(family, {}).items():
            for upstream in inputs(entry):
                missing = [dataset for dataset in chosen[name] if dataset not in chosen.get(upstream, [])]
                if upstream in chosen and missing:
                    raise ConfigError(
                        f"{family}.{name}.datasets: '{upstream}' ({key}) does not run on {missing[0]}; limit '{name}' to its datasets"
                    )
    return chosen


def unpinned_models(families: dict[str, dict[str, Any]]) -> list[str]:
    """``rerank.x.revision: main`` and the like: hub models run at a branch or tag, not a commit."""
    from beirflow.models import is_hub_name

    found = []
    for family, systems in families.items():
        for name, entry in systems.items():
            for model_key, revision_key in (("model", "revision"), ("adapter", "adapter_revision")):
                model, revision = entry.get(model_key), entry.get(revision_key)
                if model and revision and is_hub_name(model) and not _COMMIT.match(revision):
                    found.append(f"{family}.{name}.{revision_key}: {revision}")
    return found


_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def check_model_locations(families: dict[str, dict[str, Any]], import_packages: bool = True) -> None:
    """Every rerank and dense model (and adapter) that is a folder or a package is where the config says."""
    from beirflow.models import location_problem

    for family in ("rerank", "dense"):
        for name, entry in families.get(family, {}).items():
            for model_key, marker in (("model", "config.json"), ("adapter", "adapter_config.json")):
                model = entry.get(model_key)
                problem = model and location_problem(model, marker, import_packages)
                if problem:
                    raise ConfigError(f"{family}.{name}.{model_key}: model '{model}': {problem}")


def check_local_datasets(plans: dict[str, DatasetPlan]) -> None:
    """A local folder whose counts are not declared must be there to be counted: planning needs them."""
    for plan in plans.values():
        if not plan.is_local:
            continue
        for what, declared, path in (
            ("documents", plan.documents, plan.files.corpus),
            ("queries", plan.queries, plan.files.qrels),
        ):
            if declared is None and not path.is_file():
                raise ConfigError(
                    f"datasets.{plan.name}.path: {path} not found, and datasets.{plan.name}.{what} is not declared, so the shards cannot be planned: "
                    f"prepare the folder (see the README, 'Datasets you prepare yourself') or declare '{what}'"
                )
