"""Dense bi-encoders: every document encoded on GPU in shards (shared by the systems with the same encoder),
searched exactly with FAISS."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from beirflow.dense.search import OPERATIONAL_KEYS, DenseSettings, search_job_memory_mb
from beirflow.workflow import paths
from beirflow.workflow.errors import DataError
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


def check_dense(dense: Entries, systems: Mapping[str, str]) -> None:
    check_pinned("dense", dense)


def encoders(dense: Entries) -> dict[str, SharedUnit]:
    """The systems that share an encoder identity share its embeddings."""
    return shared_by_identity(dense, lambda name, entry: DenseSettings.from_config(entry, f"dense.{name}").encoder_identity())


def encoded_texts(grid: Grid, systems: tuple[str, ...]) -> int:
    """Documents and queries an encoder encodes: those of every dataset any of its systems runs on."""
    encoded = {dataset for system in systems for dataset in grid.datasets_of[system]}
    return sum(grid.datasets[dataset].document_count() + grid.datasets[dataset].query_count() for dataset in encoded)


def texts(grid: Grid) -> list[ModelWork]:
    work = []
    for encoder in grid.units["dense"].values():
        entry = grid.sections["dense"][encoder.systems[0]]
        count = encoded_texts(grid, encoder.systems)
        gpus = int(entry["resources"]["gpus"])
        work.append(ModelWork(", ".join(encoder.systems), entry["model"], "dense", entry["precision"], count, "documents", gpus))
    return work


def embedding_dimension(entry: Mapping, records: Path) -> int | None:
    """From the fetched model's own config where it is fetched, else the entry's 'dimension'."""
    from beirflow.workflow.records import read_record, record_name

    record_file = records / f"{record_name(entry['model'], entry.get('revision'))}.json"
    if record_file.is_file():
        folder = Path(read_record(record_file).folder)
        from beirflow.models.encoder import folder_defaults

        dense_layers = folder_defaults(folder, "plan").dense if folder.is_dir() else ()
        if dense_layers:
            return int(json.loads((dense_layers[-1].folder / "config.json").read_text(encoding="utf-8"))["out_features"])
        config_file = folder / "config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text(encoding="utf-8"))
            return int(config.get("hidden_size") or config.get("d_model") or config.get("n_embd"))
    dimension = entry.get("dimension")
    return int(dimension) if dimension else None


def embeddings_disk(grid: Grid, records: Path) -> list[DiskRow]:
    rows = []
    for encoder in grid.units["dense"].values():
        entry = grid.sections["dense"][encoder.systems[0]]
        dimension = embedding_dimension(entry, records)
        count = encoded_texts(grid, encoder.systems)
        basis = (
            f"{count:,} texts x {dimension} dimensions x 2 bytes (float16)"
            if dimension
            else f"{count:,} texts; dimension unknown (declare 'dimension' or fetch the model)"
        )
        if not encoder.keeps_output:
            basis += "; deleted once searched (keep_embeddings: false)"
        size = count * dimension * 2 if dimension else None
        rows.append(DiskRow(f"embeddings {entry['model']}", size, basis, not encoder.keeps_output, embeddings=True))
    return rows


def job_memory(grid: Grid) -> list[tuple[str, str, int]]:
    """Encoding jobs ask for the entry's memory; a search the largest over its datasets whose size is known."""
    rows = []
    per_shard = int(grid.config["shards"]["documents_per_shard"])
    for name, entry in grid.sections["dense"].items():
        rows.append(("encode_documents", name, int(entry["resources"]["mem_mb"])))
        searches = [0]
        for dataset in grid.datasets.values():
            try:
                searches.append(search_job_memory_mb(entry, per_shard, dataset))
            except (OSError, DataError):  # a local dataset not prepared yet
                continue
        rows.append(("dense_search", name, max(searches)))
    return rows


def dropped_embeddings_markers(grid: Grid) -> list[str]:
    """One marker per dataset and encoder whose systems all say keep_embeddings: false."""
    return [
        paths.dropped_embeddings(dataset, encoder.key)
        for encoder in grid.units["dense"].values()
        if not encoder.keeps_output
        for dataset in grid.datasets
        if any(dataset in grid.datasets_of[system] for system in encoder.systems)
    ]


class DenseInputs(RuleInputs):
    """What workflow/rules/dense.smk reads of the plan."""

    def corpus_embedding_files(self, dataset: str, encoder: str, extension: str) -> list[str]:
        """One file per document shard of an encoder's embeddings: 'npy', 'ids' or 'json'."""
        return [paths.corpus_embeddings(dataset, encoder, shard, extension) for shard in self.plan.document_shards(dataset)]

    def search_inputs(self, wildcards: Wildcards) -> dict[str, str | list[str]]:
        dataset, encoder = wildcards.dataset, self.plan.system_encoder(wildcards.system)
        return {
            "queries": paths.query_embeddings(dataset, encoder, "npy"),
            "query_ids": paths.query_embeddings(dataset, encoder, "ids"),
            "query_stats": paths.query_embeddings(dataset, encoder, "json"),
            "vectors": self.corpus_embedding_files(dataset, encoder, "npy"),
            "ids": self.corpus_embedding_files(dataset, encoder, "ids"),
            "stats": self.corpus_embedding_files(dataset, encoder, "json"),
        }

    def search_mem_mb(self, wildcards: Wildcards, attempt: int) -> int:
        """The search job's memory (beirflow.dense.search.search_job_memory_mb), grown with each retry."""
        per_shard = self.shards_per_file("documents")
        return search_job_memory_mb(self.plan.entry(wildcards.system), per_shard, self.dataset(wildcards)) * attempt

    def encoder_search_runs(self, wildcards: Wildcards) -> list[str]:
        """The runs of every system that searches this encoder's vectors of the dataset."""
        return [
            self.run_file(wildcards.dataset, system)
            for system in self.plan.encoders[wildcards.encoder].systems
            if self.plan.runs_on(system, wildcards.dataset)
        ]

    def encoder_corpus_vectors(self, wildcards: Wildcards) -> list[str]:
        return self.corpus_embedding_files(wildcards.dataset, wildcards.encoder, "npy")


FAMILY = Family(
    name="dense",
    position=30,
    run_rule="dense_search",
    rules=(
        FamilyRule(
            "encode_documents",
            per="encoder",
            shards="documents",
            array=True,
            record=lambda dataset, encoder, shard: paths.corpus_embeddings(dataset, encoder, str(shard), "json"),
            benchmark=lambda dataset, encoder, shard: paths.benchmark("encode_documents", dataset, encoder, str(shard)),
        ),
        FamilyRule(
            "encode_queries",
            per="encoder",
            record=lambda dataset, encoder, shard: paths.query_embeddings(dataset, encoder, "json"),
            benchmark=lambda dataset, encoder, shard: paths.benchmark("encode_queries", dataset, encoder, "queries"),
        ),
        FamilyRule(
            "dense_search",
            record=lambda dataset, system, shard: paths.provenance("dense", dataset, system),
            benchmark=lambda dataset, system, shard: paths.benchmark("dense_search", dataset, system),
        ),
        FamilyRule("drop_embeddings", per="encoder", local=True),
    ),
    report=FamilyReport(noun="dense", role="dense retriever"),
    models=True,
    operational_keys=OPERATIONAL_KEYS,
    check=check_dense,
    shared_units=encoders,
    final_targets=dropped_embeddings_markers,
    cost=FamilyCost(gpu_work=texts, disk=embeddings_disk, job_memory=job_memory),
)
