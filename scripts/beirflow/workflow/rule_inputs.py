"""What the rules read of the plan: input functions, params and resources, each a function of a job's
wildcards (``rule.input``'s contract), for the rules every config has (data, models, evaluation, report).
A family's own are in its record's module (``beirflow.workflow.families.<family>``)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beirflow.data.registry import LOCAL_ONLY_DATASETS, BeirArchive
from beirflow.workflow import paths
from beirflow.workflow.dataset_plan import DatasetPlan
from beirflow.workflow.job_memory import corpus_job_memory_mb
from beirflow.workflow.plan import Plan
from beirflow.workflow.records import MODEL_KEYS, record_path

Wildcards = Any  # snakemake.io.Wildcards: a job's wildcards by name
GROWN = ("mem_mb", "runtime")  # the resources a retry after a kill for them multiplies


def ancient(path: str) -> Any:
    """Snakemake's ancient(): an input whose newer copy reruns nothing (a fresh download, a fetch again)."""
    from snakemake.io import ancient as snakemake_ancient

    return snakemake_ancient(path)


def grown_with_attempt(base: int) -> Callable[[Wildcards, int], int]:
    """A job's memory (MB) or time limit (minutes): the base, times the attempt after a kill for either."""

    def resource(wildcards: Wildcards, attempt: int) -> int:
        return base * attempt

    return resource


@dataclass(frozen=True)
class MissingLocalDataset:
    """A local dataset whose files are not there: its rule fails with what to do."""

    name: str
    paths: tuple[Path, ...]

    @property
    def rule(self) -> str:
        return f"local_dataset_{self.name.replace('-', '_')}"

    @property
    def message(self) -> str:
        guide = LOCAL_ONLY_DATASETS.get(self.name, "")
        return (
            f"datasets.{self.name}: {', '.join(str(path) for path in self.paths)} missing. "
            + (f"{guide} " if guide else "")
            + "See docs/datasets.md, 'Datasets you prepare yourself'."
        )


@dataclass(frozen=True)
class RuleInputs:
    plan: Plan
    checkout: Path  # the repository: published/ ships with it
    archives: dict[str, BeirArchive]

    # ---- targets

    def metrics_files(self) -> list[str]:
        return [paths.metrics(dataset) for dataset in self.plan.datasets]

    def run_file(self, dataset: str, system: str) -> str:
        return paths.run(self.plan.systems[system], dataset, system)

    def provenance_file(self, dataset: str, system: str) -> str:
        return paths.provenance(self.plan.systems[system], dataset, system)

    def result_files(self) -> list[str]:
        """Every run, provenance and metrics file the config asks for, and each family's final markers: targets
        of 'rule all' as much as the leaderboard's, so that one deleted by a failed rerun (Snakemake removes a
        failed job's outputs) is rebuilt by the next plain run instead of leaving the leaderboard stale."""
        files = self.metrics_files()
        for dataset in self.plan.datasets:
            for system in self.plan.dataset_systems(dataset):
                files += [self.run_file(dataset, system), self.provenance_file(dataset, system)]
        for family in self.plan.families.values():
            if family.final_targets is not None:
                files += family.final_targets(self.plan)
        return files

    def dataset_systems(self, wildcards: Wildcards) -> list[str]:
        return self.plan.dataset_systems(wildcards.dataset)

    def dataset_run_files(self, wildcards: Wildcards) -> list[str]:
        return [self.run_file(wildcards.dataset, system) for system in self.dataset_systems(wildcards)]

    def system_runs(self, key: str) -> Callable[[Wildcards], list[str]]:
        """The runs of the systems an entry's ``key`` names (a first stage, the runs a fusion fuses)."""

        def runs(wildcards: Wildcards) -> list[str]:
            value = self.plan.entry(wildcards.system)[key]
            return [self.run_file(wildcards.dataset, system) for system in ([value] if isinstance(value, str) else value)]

        return runs

    # ---- data

    def dataset(self, wildcards: Wildcards) -> DatasetPlan:
        return self.plan.datasets[wildcards.dataset]

    def dataset_folder(self, wildcards: Wildcards) -> str:
        return str(self.dataset(wildcards).folder)

    def dataset_split(self, wildcards: Wildcards) -> str:
        return self.dataset(wildcards).split

    def corpus_file(self, wildcards: Wildcards) -> str:
        return str(self.dataset(wildcards).files.corpus)

    def declared_counts(self, wildcards: Wildcards) -> str:
        """A local folder's declared counts, for prepare_dataset to check against the files."""
        plan = self.dataset(wildcards)
        options = []
        if plan.documents is not None:
            options.append(f"--expected-documents {plan.documents}")
        if plan.queries is not None:
            options.append(f"--expected-queries {plan.queries}")
        return " ".join(options)

    def dataset_source(self, wildcards: Wildcards) -> dict[str, Any]:
        """A BEIR dataset needs its unzipped archive, a merged CQADupStack its merged folder (this workflow's
        markers of the shared cache), a local folder its files."""
        plan = self.dataset(wildcards)
        if plan.merged_forums:
            return {"archive": ancient(paths.merged_ready(plan.name))}
        if plan.is_local:
            files = plan.files
            return {"corpus": str(files.corpus), "queries": str(files.queries), "qrels": str(files.qrels)}
        # ancient: a fresh download of the same archive must not rerun everything after it.
        assert plan.archive is not None  # not local, so downloaded
        return {"archive": ancient(paths.archive_ready(plan.archive))}

    def corpus_source(self, wildcards: Wildcards) -> dict[str, Any]:
        """The corpus plus the validation report, so nothing reads a corpus before it is checked."""
        source = self.dataset_source(wildcards)
        source.pop("queries", None)
        source.pop("qrels", None)
        source["report"] = paths.data_report(wildcards.dataset)
        return source

    def missing_local_datasets(self) -> list[MissingLocalDataset]:
        missing = []
        for plan in self.plan.datasets.values():
            if plan.is_local:
                files = plan.files
                absent = tuple(path for path in (files.corpus, files.queries, files.qrels) if not path.exists())
                if absent:
                    missing.append(MissingLocalDataset(plan.name, absent))
        return missing

    def shards_per_file(self, axis: str) -> int:
        return int(self.plan.config["shards"][f"{axis}_per_shard"])

    def shard_count(self, axis: str) -> Callable[[Wildcards], int]:
        """How many shards of ``axis`` ('queries' or 'documents') the plan expects of the dataset."""
        return lambda wildcards: len(self.plan.shards(axis, wildcards.dataset))

    def archive_url(self, wildcards: Wildcards) -> str:
        official = self.archives[wildcards.archive].url
        mirror = str(self.plan.config["data_mirror"]).rstrip("/")
        return f"{mirror}/{official.rsplit('/', 1)[1]}" if mirror else official

    def archive_md5(self, wildcards: Wildcards) -> str:
        return self.archives[wildcards.archive].md5

    def corpus_job_mem_mb(self, rule: str) -> Callable[[Wildcards, int], int]:
        """A CPU job over a whole corpus: its memory from the corpus's size (beirflow.workflow.job_memory), grown with each retry."""
        return lambda wildcards, attempt: corpus_job_memory_mb(rule, self.dataset(wildcards).document_count(), attempt)

    def threads(self, group: str) -> int:
        """The config's threads of a group of jobs (schema: threads)."""
        return int(self.plan.config["threads"][group])

    # ---- systems

    def system_config(self, wildcards: Wildcards) -> str:
        """The system's score-changing config as canonical JSON: a change to it reruns that system only.
        Batch sizes and resources are left out, so changing them reruns nothing."""
        return json.dumps(self.plan.result_params(wildcards.system), sort_keys=True)

    def system_resource(self, name: str, default: int) -> Callable[[Wildcards, int], int]:
        """A system's own need (its entry's 'resources'), grown with each retry where it is a limit."""

        def resource(wildcards: Wildcards, attempt: int = 1) -> int:
            value = int(self.plan.entry(wildcards.system).get("resources", {}).get(name, default))
            return value * attempt if name in GROWN else value

        return resource

    def unit_resource(self, name: str, default: int) -> Callable[[Wildcards, int], int]:
        """A shared unit's need: the largest among the systems sharing it, grown with each retry where it is a limit."""

        def resource(wildcards: Wildcards, attempt: int = 1) -> int:
            systems = self.plan.encoders[wildcards.encoder].systems
            value = max(int(self.plan.entry(system).get("resources", {}).get(name, default)) for system in systems)
            return value * attempt if name in GROWN else value

        return resource

    def unit_batch_size(self, wildcards: Wildcards) -> str:
        """The largest batch size among the systems sharing a unit ('auto' where none sets one)."""
        sizes = [self.plan.entry(system).get("batch_size", "auto") for system in self.plan.encoders[wildcards.encoder].systems]
        numbers = [size for size in sizes if isinstance(size, int)]
        return str(max(numbers)) if numbers else "auto"

    def batch_size(self, wildcards: Wildcards) -> str:
        return str(self.plan.entry(wildcards.system).get("batch_size", "auto"))

    def model_records(self, wildcards: Wildcards) -> list[Any]:
        """The fetch records a GPU job loads its models from (ancient: fetching again reruns nothing): a shared
        encoder's model, or every model and adapter the system's entry names."""
        if hasattr(wildcards, "encoder"):
            identity = self.plan.encoders[wildcards.encoder].identity
            found = [record_path(identity["model"], identity["revision"])]
        else:
            entry = self.plan.entry(wildcards.system)
            found = [record_path(entry[model], entry.get(revision)) for model, revision, _ in MODEL_KEYS if entry.get(model)]
        return [ancient(path) for path in found]

    def shared_unit_params(self, wildcards: Wildcards) -> str:
        """A shared unit's identity (what its outputs depend on) as canonical JSON: its jobs' rerun trigger."""
        return json.dumps(self.plan.encoders[wildcards.encoder].identity, sort_keys=True)

    def shared_unit_key(self, wildcards: Wildcards) -> str:
        """The config key a shared unit's errors name: the first, by name, of the systems sharing it."""
        unit = self.plan.encoders[wildcards.encoder]
        family = self.plan.systems[unit.systems[0]]
        return f"{family}.{min(unit.systems)}"

    # ---- evaluation, cost, report

    def metrics(self) -> list[str]:
        return list(self.plan.config["evaluation"]["metrics"])

    def gpu_job_records(self) -> list[str]:
        """The record every GPU-rule job writes (sidecar or provenance), for the cost table."""
        return [job.record for job in self.plan.recorded_jobs()]

    def jobs_config(self) -> str:
        return json.dumps(self.plan.jobs_config(), sort_keys=True)

    def leaderboard_labels(self) -> str:
        """'--label' options heading each system built on others with them: 'bm25-flat » monot5-base'."""
        labels = []
        for system in self.plan.systems:
            chain = self.plan.stack_chain(system)
            if len(chain) > 1:
                heading = " » ".join(chain)
                labels.append(f"--label {shlex.quote(f'{system}={heading}')}")
        return " ".join(labels)

    def report_settings(self) -> dict[str, Any]:
        return self.plan.report_settings()

    def report_json(self, part: str) -> str:
        """The plan's ``report_<part>()`` ('systems', 'datasets', 'settings') as canonical JSON."""
        return json.dumps(getattr(self.plan, f"report_{part}")(), sort_keys=True)

    def published_files(self) -> list[str]:
        """report.published, relative paths taken from the checkout (published/ ships with it)."""
        return [
            str(path if path.is_absolute() else self.checkout / path)
            for path in map(Path, self.plan.config["report"]["published"])
        ]

    def model_provenance_files(self) -> list[str]:
        return [
            self.provenance_file(dataset, system)
            for dataset in self.plan.datasets
            for system in self.plan.dataset_systems(dataset)
            if self.plan.systems[system] in self.plan.model_sections
        ]
