"""The plan: what the DAG is built from, made once from the config by ``build``.

``build(config)`` validates the config against the schema (defaults filled in), resolves datasets,
systems and the units systems share, runs every family's cross-checks and the generic ones (the systems
each reads exist, run where it runs, form no cycle), and returns a frozen ``Plan`` that ``common.smk``,
``plan_grid.py``, the cost job and the tests read. Errors name the config key. What a family is comes
from its record (beirflow.workflow.family); the plan names none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beirflow.data.shards import shard_count, shard_ids
from beirflow.workflow.config_checks import check_model_locations, load_schema, validate_config
from beirflow.workflow.dataset_plan import check_local_datasets, plan_datasets
from beirflow.workflow.errors import ConfigError
from beirflow.workflow.family import Family, FamilyRule, Grid, SharedUnit, families
from beirflow.workflow.settings import OPERATIONAL_KEYS
from beirflow.workflow.systems import (
    check_cycles,
    check_upstream_exists,
    enabled_systems,
    plan_systems,
    stack_chain,
    system_datasets,
)

# Rules outside the families that run on the submit host, never through sbatch: downloads (compute
# nodes may have no internet), model fetches, and light jobs whose queueing would cost more than they do.
WORKFLOW_LOCAL_RULES = ("download_beir", "shard_queries", "fetch_model", "evaluate", "cost", "leaderboard", "report")


@dataclass(frozen=True)
class RecordedJob:
    """A job whose record the cost table reads: what it ran for, and where its record and benchmark are."""

    rule: str
    dataset: str
    unit: str  # the system, or the encoder
    systems: tuple[str, ...]
    record: str
    benchmark: str

    @property
    def job(self) -> str:
        """Unique within the rule and dataset: '<system>/<shard>', '<encoder>/queries', '<system>', ..."""
        return self.benchmark.removeprefix(f"benchmarks/{self.rule}/{self.dataset}/").removesuffix(".tsv")


@dataclass(frozen=True)
class Plan(Grid):
    """Everything the DAG is built from, from the validated config: read, never changed."""

    families: dict[str, Family]
    systems: dict[str, str]  # system -> family

    def jobs_config(self) -> dict[str, Any]:
        """The part of the config that decides which jobs write cost records: build() of it plans the same
        ones. It holds the systems of the families that write records, with their result keys, and the
        systems those read from (first stages, fused runs), with only what places them (datasets, inputs).
        A system added elsewhere, a BM25 parameter, a batch size, resources or report keys change nothing here."""
        shown_or_operational = {*OPERATIONAL_KEYS, *(key for family in self.families.values() for key in family.operational_keys)}
        shown_or_operational.discard("datasets")
        placing = self.placing_keys
        recording = {name for name, family in self.families.items() if family.recorded_rules}
        needed = [system for system, family in self.systems.items() if family in recording]
        for system in needed:  # grows while read: the systems each needed one reads from
            for _, upstream in self.families[self.systems[system]].upstream(self.entry(system)):
                if upstream not in needed:
                    needed.append(upstream)
        # A config with no such system is still a valid plan: it keeps one system, placed like the first.
        needed = needed or [next(iter(self.systems))]

        def kept(system: str) -> dict[str, Any]:
            entry = self.entry(system)
            if self.systems[system] in recording:
                return {key: value for key, value in entry.items() if key not in shown_or_operational}
            return {key: value for key, value in entry.items() if key in placing}

        return {
            "data_dir": self.config["data_dir"],
            "datasets": self.config["datasets"],
            "shards": self.config["shards"],
            **{
                family: {system: kept(system) for system in systems if system in needed}
                for family, systems in self.sections.items()
            },
        }

    @property
    def placing_keys(self) -> set[str]:
        """Keys that place a system in the plan: where it runs and the systems it reads."""
        return {"datasets", *(key for family in self.families.values() for key in family.reads)}

    @property
    def model_sections(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The systems of the families whose entries name models (fetched by rule fetch_model)."""
        return {name: self.sections[name] for name, family in self.families.items() if family.models}

    def entry(self, system: str) -> dict[str, Any]:
        return self.sections[self.systems[system]][system]

    def result_params(self, system: str) -> dict[str, Any]:
        """A system's entry without its operational keys: what its rule params hold."""
        operational = {*OPERATIONAL_KEYS, *self.families[self.systems[system]].operational_keys}
        return {key: value for key, value in self.entry(system).items() if key not in operational}

    def stack_chain(self, system: str) -> list[str]:
        """The systems a system is built on, one on the other, then itself: ['bm25-flat', 'monot5-3b']."""
        return stack_chain(system, self.families, self.sections, self.systems)

    def report_systems(self) -> list[dict[str, Any]]:
        """What the report knows of each system (labels, series, sizes): report keys only."""
        systems = []
        for system, family in self.systems.items():
            entry = self.entry(system)
            shown = entry.get("report", {})
            style = self.families[family].report
            systems.append(
                {
                    "name": system,
                    "family": family,
                    "kind": style.noun,
                    "role": style.role,
                    "markers": list(style.markers),
                    "line": style.line,
                    "label": shown.get("label", system),
                    "series": shown.get("series"),
                    "parameters": shown.get("parameters"),
                    "published_as": shown.get("published_as"),
                    "first_stage": self.families[family].stacked_on(entry),
                }
            )
        return systems

    def report_datasets(self) -> dict[str, str | None]:
        """Each dataset's BEIR name (None for one that is not BEIR's)."""
        return {name: dataset.beir_name for name, dataset in self.datasets.items()}

    def report_settings(self) -> dict[str, Any]:
        """The report's settings (beirflow.report.results.ReportSettings' fields); the baseline defaults to the first BM25 system."""
        chosen = self.config["report"]
        keys = ("tolerance", "max_p", "permutations", "in_domain", "in_domain_metric", "cqadupstack")
        return {
            "primary": self.config["evaluation"]["primary"],
            "baseline": chosen.get("baseline") or next(iter(self.first_stages()), None),
            **{key: chosen[key] for key in keys},
        }

    def first_stages(self) -> list[str]:
        """The systems of the families that are first stages, in config order: the report's default baseline."""
        return [system for system, family in self.systems.items() if self.families[family].report.role == "first stage"]

    def runs_on(self, system: str, dataset: str) -> bool:
        return dataset in self.datasets_of[system]

    def dataset_systems(self, dataset: str) -> list[str]:
        return [system for system in self.systems if self.runs_on(system, dataset)]

    def query_shards(self, dataset: str) -> list[str]:
        per_shard = self.config["shards"]["queries_per_shard"]
        return shard_ids(shard_count(self.datasets[dataset].query_count(), per_shard))

    def document_shards(self, dataset: str) -> list[str]:
        per_shard = self.config["shards"]["documents_per_shard"]
        return shard_ids(shard_count(self.datasets[dataset].document_count(), per_shard))

    def shards(self, axis: str, dataset: str) -> list[str]:
        return self.query_shards(dataset) if axis == "queries" else self.document_shards(dataset)

    @property
    def encoders(self) -> dict[str, SharedUnit]:
        """Every family's shared units (the jobs of its rules that are 'per: encoder'), by key."""
        return {key: unit for units in self.units.values() for key, unit in units.items()}

    def system_encoder(self, system: str) -> str:
        return next(key for key, unit in self.units[self.systems[system]].items() if system in unit.systems)

    def rule_units(self, rule: FamilyRule, family: str, dataset: str) -> list[tuple[str, tuple[str, ...]]]:
        """(unit, the systems it serves) of each job of ``rule`` on ``dataset``: systems, or shared encoders."""
        if rule.per == "encoder":
            return [
                (key, unit.systems)
                for key, unit in self.units[family].items()
                if any(self.runs_on(system, dataset) for system in unit.systems)
            ]
        return [(system, (system,)) for system in self.sections[family] if self.runs_on(system, dataset)]

    def recorded_jobs(self) -> list[RecordedJob]:
        """Every job that writes a cost record (GPU-rule jobs), in plan order."""
        jobs = []
        for dataset in self.datasets:
            for family in self.families.values():
                for rule in family.recorded_rules:
                    assert rule.record is not None and rule.benchmark is not None
                    shards = self.shards(rule.shards, dataset) if rule.shards else [None]
                    for unit, systems in self.rule_units(rule, family.name, dataset):
                        for shard in shards:
                            record, benchmark = rule.record(dataset, unit, shard), rule.benchmark(dataset, unit, shard)
                            jobs.append(RecordedJob(rule.name, dataset, unit, systems, record, benchmark))
        return jobs

    @property
    def local_rules(self) -> tuple[str, ...]:
        family_rules = [rule.name for family in self.families.values() for rule in family.rules if rule.local]
        return (*WORKFLOW_LOCAL_RULES, *family_rules)

    @property
    def array_rules(self) -> tuple[str, ...]:
        return tuple(rule.name for family in self.families.values() for rule in family.rules if rule.array)

    def array_submissions(self) -> dict[str, int]:
        """Job arrays per array rule over the grid: one per dataset and system (or encoder)."""
        counts = dict.fromkeys(self.array_rules, 0)
        for family in self.families.values():
            for rule in family.rules:
                if rule.array:
                    counts[rule.name] += sum(len(self.rule_units(rule, family.name, dataset)) for dataset in self.datasets)
        return counts


def build(
    config: dict[str, Any], schema: dict[str, Any] | None = None, import_packages: bool = True, check_models: bool = True
) -> Plan:
    """The plan of ``config``: validated against the schema, cross-checked, frozen. Raises ConfigError naming the key.

    ``import_packages`` false leaves ``package:`` models unchecked (under conda the jobs' environments hold
    them); ``check_models`` false skips the model folder checks altogether (planning on another machine).
    """
    schema = schema or load_schema()
    records = families()
    unknown = sorted(set(records) - set(schema["properties"]))
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: a family record (beirflow/workflow/families/{unknown[0]}.py) with no section in the schema"
        )
    checked = validate_config(config, schema)
    # An empty dataset entry (`scifact:`) is null in YAML: the BEIR dataset of that name.
    checked["datasets"] = {name: entry or {} for name, entry in checked["datasets"].items()}
    for section in records:
        checked[section] = enabled_systems(checked.get(section))
    if checked["evaluation"]["primary"] not in checked["evaluation"]["metrics"]:
        raise ConfigError(f"evaluation.primary: '{checked['evaluation']['primary']}' is not one of evaluation.metrics")
    datasets = plan_datasets(checked["datasets"], checked["data_dir"])
    check_local_datasets(datasets)
    sections = {section: checked[section] for section in records}
    systems = plan_systems(sections)
    if not systems:
        raise ConfigError(f"no systems configured: add at least one under {' or '.join(records)}")
    check_upstream_exists(records, sections, systems)
    for name, family in records.items():
        if family.check is not None:
            family.check(sections[name], systems)
    check_cycles(records, sections, systems)
    datasets_of = {name: tuple(chosen) for name, chosen in system_datasets(records, sections, datasets).items()}
    if check_models:
        check_model_locations({name: sections[name] for name, family in records.items() if family.models}, import_packages)
    baseline = checked["report"].get("baseline")
    if baseline is not None and baseline not in systems:
        raise ConfigError(f"report.baseline: '{baseline}' is not a configured system")
    units = {name: family.shared_units(sections[name]) for name, family in records.items() if family.shared_units}
    return Plan(checked, datasets, sections, datasets_of, units, records, systems)
