"""The datasets of a run: BEIR names, CQADupStack's forums and local folders resolved to folders, splits
and the counts the shards are planned from.

This runs every time Snakemake parses the workflow, so it reads no corpus for BEIR names (their counts
are known) and counts lines of local files at most once per process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from beirflow.data.beir import QRELS_HEADER_IDS, BeirFiles
from beirflow.data.registry import BEIR_ZERO_SHOT, CQADUPSTACK, beir_archives, beir_datasets, expand_beir_name
from beirflow.workflow.errors import ConfigError


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
                    f"prepare the folder (docs/datasets.md, 'Datasets you prepare yourself') or declare '{what}'"
                )
        if plan.queries is None and plan.files.qrels.is_file() and plan.query_count() == 0:
            raise ConfigError(
                f"datasets.{plan.name}.split: {plan.files.qrels} holds no judgement, so split '{plan.split}' has no query to evaluate"
            )
