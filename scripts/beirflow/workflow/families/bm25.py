"""BM25 with Pyserini (Lucene): one index per dataset and field layout, one search job per dataset and system."""

from __future__ import annotations

from pathlib import Path

from beirflow.workflow import paths
from beirflow.workflow.family import DiskRow, Family, FamilyCost, FamilyReport, FamilyRule, Grid, corpus_bytes_row
from beirflow.workflow.rule_inputs import RuleInputs, Wildcards

# Lucene's index against the corpus file's bytes, measured on the embedded sample (SciFact abstracts).
INDEX_PER_CORPUS_BYTE = {"flat": 1.40, "multifield": 1.45}


def index_disk(grid: Grid, records: Path) -> list[DiskRow]:
    """One index per dataset and field layout the systems use."""
    used = {entry["fields"] for entry in grid.sections["bm25"].values()}
    datasets = list(grid.datasets.values())
    return [
        corpus_bytes_row(f"bm25_index ({fields})", ratio, datasets)
        for fields, ratio in INDEX_PER_CORPUS_BYTE.items()
        if fields in used
    ]


class Bm25Inputs(RuleInputs):
    """What workflow/rules/bm25.smk reads of the plan."""

    def index_dir(self, wildcards: Wildcards) -> str:
        return paths.bm25_index(wildcards.dataset, self.plan.entry(wildcards.system)["fields"])

    def index_runtime(self, wildcards: Wildcards, attempt: int) -> int:
        # About a million documents in 2-3 minutes on 4 threads; generous for slow file systems.
        return int((10 + self.dataset(wildcards).document_count() // 100_000) * attempt)


FAMILY = Family(
    name="bm25",
    position=10,
    run_rule="bm25_search",
    rules=(FamilyRule("bm25_index"), FamilyRule("bm25_search")),
    report=FamilyReport(noun="BM25", role="first stage"),
    cost=FamilyCost(disk=index_disk),
)
