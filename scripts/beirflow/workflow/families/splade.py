"""Learned sparse retrieval (SPLADE): document shards encoded into term weights on GPU as job arrays, one
impact index per dataset and encoder, one search per system (beirflow.sparse.splade)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from beirflow.sparse.splade import OPERATIONAL_KEYS, SpladeSettings
from beirflow.workflow import paths
from beirflow.workflow.family import (
    DiskRow,
    Entries,
    Family,
    FamilyCost,
    FamilyReport,
    FamilyRule,
    Grid,
    ModelWork,
    SharedUnit,
    check_pinned,
    shared_by_identity,
)
from beirflow.workflow.rule_inputs import RuleInputs, Wildcards

NAME = "splade"
# Pyserini's prebuilt impact index of MS MARCO passage encoded by SPLADE++ ED (pyserini/prebuilt_index_info.py,
# msmarco-v1-passage.splade-pp-ed): 2,102,230,097 bytes compressed for 8,841,823 passages. A lower bound.
INDEX_BYTES_PER_DOCUMENT = 238


def vectors(dataset: str, encoder: str, shard: str, extension: str = "jsonl") -> str:
    """One document shard's term weights (Anserini's JsonVectorCollection); ``json``: its record."""
    return paths.shared_unit_shard(NAME, dataset, encoder, shard, extension)


def impact_index(dataset: str = paths.DATASET, encoder: str = "{encoder}") -> str:
    return f"{paths.shared_unit(NAME, dataset, encoder)}/index"


# What one job asks for where its entry's 'resources' does not say (the schema's defaults).
RESOURCE_DEFAULTS = {"gpus": 1, "mem_mb": 16000, "runtime": 240, "threads": 4}


class SpladeInputs(RuleInputs):
    """What workflow/rules/splade.smk reads of the plan."""

    def encoder_need(self, name: str) -> Callable[..., int]:
        return self.unit_resource(name, RESOURCE_DEFAULTS[name])

    def system_need(self, name: str) -> Callable[..., int]:
        return self.system_resource(name, RESOURCE_DEFAULTS[name])

    def shard_vectors(self, wildcards: Wildcards) -> list[str]:
        return [vectors(wildcards.dataset, wildcards.encoder, shard) for shard in self.plan.document_shards(wildcards.dataset)]

    def system_index(self, wildcards: Wildcards) -> str:
        return impact_index(wildcards.dataset, self.plan.system_encoder(wildcards.system))


def check_splade(entries: Entries, systems: Mapping[str, str]) -> None:
    """Keys are known; hub models are pinned to a commit."""
    for name, entry in entries.items():
        SpladeSettings.from_config(entry, f"{NAME}.{name}")
    check_pinned(NAME, entries)


def encoders(entries: Entries) -> dict[str, SharedUnit]:
    """The systems with the same encoder identity share the documents' vectors and their index."""
    return shared_by_identity(entries, lambda name, entry: SpladeSettings.from_config(entry, f"{NAME}.{name}").encoder_identity())


def _encoded(grid: Grid, unit: SharedUnit) -> tuple[int, int]:
    """(documents, queries) of the datasets any of the unit's systems runs on."""
    datasets = {dataset for system in unit.systems for dataset in grid.datasets_of[system]}
    documents = sum(grid.datasets[dataset].document_count() for dataset in datasets)
    queries = sum(grid.datasets[dataset].query_count() for dataset in datasets)
    return documents, queries


def texts(grid: Grid) -> list[ModelWork]:
    """Each encoder's documents, and the queries every system sharing it encodes again."""
    work = []
    for unit in grid.units[NAME].values():
        entry = grid.sections[NAME][unit.systems[0]]
        documents, queries = _encoded(grid, unit)
        count = documents + queries * len(unit.systems)
        gpus = int(entry["resources"]["gpus"])
        work.append(ModelWork(", ".join(unit.systems), entry["model"], "splade", entry["precision"], count, "documents", gpus))
    return work


def index_disk(grid: Grid, records: Path) -> list[DiskRow]:
    rows = []
    for unit in grid.units[NAME].values():
        documents, _ = _encoded(grid, unit)
        basis = f"{documents:,} documents x {INDEX_BYTES_PER_DOCUMENT} bytes (Pyserini's SPLADE++ MS MARCO index, compressed; a lower bound)"
        rows.append(DiskRow(f"impact index {unit.identity['model']}", documents * INDEX_BYTES_PER_DOCUMENT, basis))
    return rows


def job_memory(grid: Grid) -> list[tuple[str, str, int]]:
    rows = []
    for name, entry in grid.sections[NAME].items():
        rows += [
            ("encode_sparse_documents", name, int(entry["resources"]["mem_mb"])),
            ("sparse_search", name, int(entry["resources"]["mem_mb"])),
        ]
    return rows


FAMILY = Family(
    name=NAME,
    position=40,
    run_rule="sparse_search",
    rules=(
        FamilyRule(
            "encode_sparse_documents",
            per="encoder",
            shards="documents",
            array=True,
            record=lambda dataset, encoder, shard: vectors(dataset, encoder, str(shard), "json"),
            benchmark=lambda dataset, encoder, shard: paths.benchmark("encode_sparse_documents", dataset, encoder, str(shard)),
        ),
        FamilyRule("sparse_index", per="encoder"),
        FamilyRule(
            "sparse_search",
            record=lambda dataset, system, shard: paths.provenance(NAME, dataset, system),
            benchmark=lambda dataset, system, shard: paths.benchmark("sparse_search", dataset, system),
        ),
    ),
    report=FamilyReport(noun="SPLADE", role="sparse retriever", markers=("D", "P", "X"), line="-."),
    models=True,
    operational_keys=OPERATIONAL_KEYS,
    check=check_splade,
    shared_units=encoders,
    cost=FamilyCost(gpu_work=texts, disk=index_disk, job_memory=job_memory),
)
