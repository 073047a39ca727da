"""Rerankers (monoT5, cross-encoders, bi-encoders) of a first stage's top hits, sharded over the queries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from beirflow.workflow import paths
from beirflow.workflow.errors import ConfigError
from beirflow.workflow.family import (
    DiskRow,
    Entries,
    Family,
    FamilyCost,
    FamilyReport,
    FamilyRule,
    Grid,
    ModelWork,
    check_pinned,
    corpus_bytes_row,
)
from beirflow.workflow.rule_inputs import RuleInputs, Wildcards

# The keys each kind of reranker takes, beside the common ones.
KIND_KEYS = {
    "monot5": {"truncation", "template"},
    "bi-encoder": {"pooling", "normalize", "similarity", "query_prefix", "document_prefix"},
    "cross-encoder": {"adapter", "adapter_revision", "query_template", "document_template"},
}
# The document store against the corpus file's bytes, measured on the embedded sample.
STORE_PER_CORPUS_BYTE = 1.25


def check_rerankers(rerankers: Entries, systems: Mapping[str, str]) -> None:
    """Keys fit the kind; hub models are pinned. (That the first stage exists the plan checks for every family.)"""
    every_kind_key = set().union(*KIND_KEYS.values())
    for name, entry in rerankers.items():
        key = f"rerank.{name}"
        misplaced = sorted((every_kind_key - KIND_KEYS[entry["kind"]]) & entry.keys())
        if misplaced:
            raise ConfigError(f"{key}.{misplaced[0]}: not a key of a '{entry['kind']}' reranker")
        template = entry.get("template")
        if template is not None and ("{query}" not in template or "{document}" not in template):
            raise ConfigError(f"{key}.template: must contain {{query}} and {{document}}")
    check_pinned("rerank", rerankers, (("model", "revision"), ("adapter", "adapter_revision")))


def pairs(grid: Grid) -> list[ModelWork]:
    """Each reranker's (query, document) pairs: judged queries x depth, an upper bound."""
    work = []
    for name, entry in grid.sections["rerank"].items():
        count = sum(grid.datasets[dataset].query_count() * int(entry["depth"]) for dataset in grid.datasets_of[name])
        gpus = int(entry["resources"]["gpus"])
        work.append(ModelWork(name, entry["model"], entry["kind"], entry["precision"], count, "pairs", gpus))
    return work


def store_disk(grid: Grid, records: Path) -> list[DiskRow]:
    if not grid.sections["rerank"]:
        return []
    return [corpus_bytes_row("document_store", STORE_PER_CORPUS_BYTE, list(grid.datasets.values()))]


def shard_memory(grid: Grid) -> list[tuple[str, str, int]]:
    return [("rerank_shard", name, int(entry["resources"]["mem_mb"])) for name, entry in grid.sections["rerank"].items()]


class RerankInputs(RuleInputs):
    """What workflow/rules/rerank.smk reads of the plan."""

    def first_stage_run(self, wildcards: Wildcards) -> str:
        return self.run_file(wildcards.dataset, wildcards.first_stage)

    def candidates_dir(self, wildcards: Wildcards) -> str:
        entry = self.plan.entry(wildcards.system)
        return paths.candidates(wildcards.dataset, entry["first_stage"], entry["depth"])

    def shard_files(self, extension: str) -> Callable[[Wildcards], list[str]]:
        """The system's query shards' runs ('trec') or records ('json')."""
        return lambda wildcards: [
            paths.rerank_shard(wildcards.dataset, wildcards.system, shard, extension)
            for shard in self.plan.query_shards(wildcards.dataset)
        ]


FAMILY = Family(
    name="rerank",
    position=20,
    run_rule="rerank_merge",
    rules=(
        FamilyRule("document_store"),
        FamilyRule("rerank_candidates", local=True),
        FamilyRule(
            "rerank_shard",
            shards="queries",
            array=True,
            record=lambda dataset, system, shard: paths.rerank_shard(dataset, system, str(shard), "json"),
            benchmark=lambda dataset, system, shard: paths.benchmark("rerank_shard", dataset, system, str(shard)),
        ),
        FamilyRule("rerank_merge", local=True),
    ),
    report=FamilyReport(noun="reranker", role="reranker", markers=("o", "v", "<"), line="-"),
    models=True,
    reads=("first_stage",),
    check=check_rerankers,
    cost=FamilyCost(
        gpu_work=pairs,
        disk=store_disk,
        job_memory=shard_memory,
        run_hits=lambda entry: int(entry["depth"]),
        run_copies=2,  # the shards' runs beside the merged run
    ),
)
