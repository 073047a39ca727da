"""The plan: what the DAG is built from, made once from the config by ``build``.

``build(config)`` validates the config against the schema (defaults filled in), reads the families
the schema declares (``x-family``), resolves datasets, systems and shared encoders, runs every
cross-check, and returns a frozen ``Plan`` that ``common.smk``, ``plan_grid.py``, the cost job and
the tests read. Errors name the config key.

This runs every time Snakemake parses the workflow, so it reads no corpus for BEIR names
(their counts are known) and counts lines of local files at most once per process.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from beirflow.beir import QRELS_HEADER_IDS, BeirFiles
from beirflow.errors import ConfigError
from beirflow.fusion_methods import parameter_problem
from beirflow.records import MODEL_KEYS
from beirflow.registry import BEIR_ZERO_SHOT, CQADUPSTACK, beir_archives, beir_datasets, expand_beir_name
from beirflow.settings import OPERATIONAL_KEYS
from beirflow.shards import shard_count, shard_ids


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
        problem = parameter_problem(entry.get("method", "rrf"), dict(entry.get("params") or {}), len(runs))
        if problem:
            raise ConfigError(f"{key}.{problem}")


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
    """Every model (and adapter) of the given families that is a folder or a package is where the config says,
    and names no revision: only a Hugging Face model has one (a folder or a package is what it is on disk)."""
    from beirflow.models import is_hub_name, location_problem

    for family, systems in families.items():
        for name, entry in systems.items():
            for model_key, revision_key, marker in MODEL_KEYS:
                model = entry.get(model_key)
                problem = model and location_problem(model, marker, import_packages)
                if problem:
                    raise ConfigError(f"{family}.{name}.{model_key}: model '{model}': {problem}")
                if model and entry.get(revision_key) and not is_hub_name(model):
                    raise ConfigError(
                        f"{family}.{name}.{revision_key}: model '{model}' is a "
                        f"{'package' if model.startswith('package:') else 'folder'}, which has no revision: "
                        "only a Hugging Face model is fetched at one; remove the key"
                    )


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


# ---- the plan, built once --------------------------------------------------------------

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# Rules outside the families that run on the submit host, never through sbatch: downloads (compute
# nodes may have no internet), model fetches, and light jobs whose queueing would cost more than they do.
WORKFLOW_LOCAL_RULES = ("download_beir", "shard_queries", "fetch_model", "evaluate", "cost", "leaderboard", "report")


@dataclass(frozen=True)
class FamilyRule:
    """One rule of a family, as the schema's ``x-family`` record declares it."""

    name: str
    per: str = "system"  # what one job is for: 'system', or 'encoder' where systems share one
    local: bool = False  # runs on the submit host
    array: bool = False  # its shards go to SLURM as one job array per dataset and system (or encoder)
    shards: str | None = None  # 'queries' or 'documents': one job per shard of that axis
    record: str | None = None  # the record each job writes, read by the cost table (a path template)
    benchmark: str | None = None  # Snakemake's benchmark file of each job (a path template)


@dataclass(frozen=True)
class Family:
    """A config section of systems and the rules that run them (the schema's ``x-family``)."""

    name: str
    run_rule: str  # writes results/{dataset}/<family>/{system}/run.trec and provenance.json
    rules: tuple[FamilyRule, ...]
    models: bool = False  # entries name models: fetched by rule fetch_model, cited by the report

    @property
    def recorded_rules(self) -> tuple[FamilyRule, ...]:
        return tuple(rule for rule in self.rules if rule.record)


def load_schema(path: Path = SCHEMA) -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def schema_families(schema: dict[str, Any]) -> dict[str, Family]:
    """The families the schema declares, in its order: every top-level section with an ``x-family`` record."""
    families = {}
    for name, section in schema["properties"].items():
        record = section.get("x-family")
        if record is None:
            continue
        rules = tuple(FamilyRule(rule, **fields) for rule, fields in record["rules"].items())
        families[name] = Family(name, record["run_rule"], rules, bool(record.get("models", False)))
    return families


def validate_config(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` checked against the schema, with its defaults filled in (as Snakemake's
    ``validate`` does); an error names the config key."""
    import copy

    import jsonschema
    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict[str, Any], instance: Any, subschema: dict[str, Any]) -> Any:
        if isinstance(instance, dict):
            for name, property_schema in properties.items():
                if "default" in property_schema:
                    instance.setdefault(name, copy.deepcopy(property_schema["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    validator = validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)
    checked = copy.deepcopy(config)
    try:
        validator.validate(checked)
    except jsonschema.ValidationError as error:
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"{key}: {error.message}") from None
    return checked


# Keys that place a system in the plan: where it runs and what it reads (a fusion's runs, a reranker's first stage).
PLACING_KEYS = ("datasets", "runs", "first_stage")


@dataclass(frozen=True)
class Encoder:
    """One encoder's embeddings, shared by the dense systems with the same encoder identity."""

    key: str
    identity: dict[str, Any]
    systems: tuple[str, ...]  # in config order
    keeps_embeddings: bool = True  # False when every system sharing it says keep_embeddings: false


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
class Plan:
    """Everything the DAG is built from, from the validated config: read, never changed."""

    config: dict[str, Any]  # validated, defaults filled, disabled systems removed
    datasets: dict[str, DatasetPlan]
    families: dict[str, Family]
    sections: dict[str, dict[str, dict[str, Any]]]  # family -> system -> entry
    systems: dict[str, str]  # system -> family
    datasets_of: dict[str, tuple[str, ...]]  # system -> the datasets it runs on
    encoders: dict[str, Encoder]

    def jobs_config(self) -> dict[str, Any]:
        """The part of the config that decides which jobs write cost records: build() of it plans the same
        ones. It holds the systems of the families that write records, with their result keys, and the
        systems those read from (first stages, fused runs), with only what places them (datasets, inputs).
        A system added elsewhere, a BM25 parameter, a batch size, resources or report keys change nothing here."""
        shown_or_operational = set(OPERATIONAL_KEYS) - {"datasets"}
        recording = {name for name, family in self.families.items() if family.recorded_rules}
        needed = [system for system, family in self.systems.items() if family in recording]
        for system in needed:  # grows while read: the systems each needed one reads from
            entry = self.entry(system)
            for upstream in [entry.get("first_stage"), *entry.get("runs", [])]:
                if upstream and upstream not in needed:
                    needed.append(upstream)
        # A config with no such system is still a valid plan: it keeps one system, placed like the first.
        needed = needed or [next(iter(self.systems))]

        def kept(system: str) -> dict[str, Any]:
            entry = self.entry(system)
            if self.systems[system] in recording:
                return {key: value for key, value in entry.items() if key not in shown_or_operational}
            return {key: value for key, value in entry.items() if key in PLACING_KEYS}

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
    def model_sections(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The systems of the families whose entries name models (fetched by rule fetch_model)."""
        return model_sections(self.families, self.sections)

    def entry(self, system: str) -> dict[str, Any]:
        return self.sections[self.systems[system]][system]

    def report_systems(self) -> list[dict[str, Any]]:
        """What the report knows of each system (labels, series, sizes): report keys only."""
        systems = []
        for system, family in self.systems.items():
            entry = self.entry(system)
            shown = entry.get("report", {})
            systems.append(
                {
                    "name": system,
                    "family": family,
                    "label": shown.get("label", system),
                    "series": shown.get("series"),
                    "parameters": shown.get("parameters"),
                    "published_as": shown.get("published_as"),
                    "first_stage": entry.get("first_stage"),
                }
            )
        return systems

    def report_datasets(self) -> dict[str, str | None]:
        """Each dataset's BEIR name (None for one that is not BEIR's)."""
        return {name: dataset.beir_name for name, dataset in self.datasets.items()}

    def report_settings(self) -> dict[str, Any]:
        """The report's settings (beirflow.results.ReportSettings' fields); the baseline defaults to the first BM25 system."""
        chosen = self.config["report"]
        keys = ("tolerance", "max_p", "permutations", "in_domain", "in_domain_metric", "cqadupstack")
        return {
            "primary": self.config["evaluation"]["primary"],
            "baseline": chosen.get("baseline") or next(iter(self.config["bm25"]), None),
            **{key: chosen[key] for key in keys},
        }

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

    def system_encoder(self, system: str) -> str:
        return next(key for key, encoder in self.encoders.items() if system in encoder.systems)

    def units(self, rule: FamilyRule, family: str, dataset: str) -> list[tuple[str, tuple[str, ...]]]:
        """(unit, the systems it serves) of each job of ``rule`` on ``dataset``: systems, or shared encoders."""
        if rule.per == "encoder":
            return [
                (key, encoder.systems)
                for key, encoder in self.encoders.items()
                if any(self.runs_on(system, dataset) for system in encoder.systems)
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
                    for unit, systems in self.units(rule, family.name, dataset):
                        for shard in shards:
                            fields = {"dataset": dataset, "system": unit, "encoder": unit, "shard": shard}
                            jobs.append(
                                RecordedJob(
                                    rule.name,
                                    dataset,
                                    unit,
                                    systems,
                                    rule.record.format(**fields),
                                    rule.benchmark.format(**fields),
                                )
                            )
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
                    counts[rule.name] += sum(len(self.units(rule, family.name, dataset)) for dataset in self.datasets)
        return counts


def model_sections(
    families: dict[str, Family], sections: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, dict[str, dict[str, Any]]]:
    return {name: sections[name] for name, family in families.items() if family.models}


def build(
    config: dict[str, Any], schema: dict[str, Any] | None = None, import_packages: bool = True, check_models: bool = True
) -> Plan:
    """The plan of ``config``: validated against the schema, cross-checked, frozen. Raises ConfigError naming the key.

    ``import_packages`` false leaves ``package:`` models unchecked (under conda the jobs' environments hold
    them); ``check_models`` false skips the model folder checks altogether (planning on another machine).
    """
    from beirflow.dense import DenseSettings, encoder_key

    schema = schema or load_schema()
    families = schema_families(schema)
    checked = validate_config(config, schema)
    # An empty dataset entry (`scifact:`) is null in YAML: the BEIR dataset of that name.
    checked["datasets"] = {name: entry or {} for name, entry in checked["datasets"].items()}
    for family in families:
        checked[family] = enabled_systems(checked.get(family))
    if checked["evaluation"]["primary"] not in checked["evaluation"]["metrics"]:
        raise ConfigError(f"evaluation.primary: '{checked['evaluation']['primary']}' is not one of evaluation.metrics")
    datasets = plan_datasets(checked["datasets"], checked["data_dir"])
    check_local_datasets(datasets)
    sections = {family: checked[family] for family in families}
    systems = plan_systems(sections)
    if not systems:
        raise ConfigError("bm25: no systems configured; add at least one under 'bm25'")
    datasets_of = {name: tuple(chosen) for name, chosen in system_datasets(sections, datasets).items()}
    rerankers, fusion, dense = (sections.get(family, {}) for family in ("rerank", "fusion", "dense"))
    check_rerankers(rerankers, systems)
    check_dense(dense)
    check_fusion(fusion, systems)
    check_cycles(rerankers, fusion)
    if check_models:
        check_model_locations(model_sections(families, sections), import_packages=import_packages)
    baseline = checked["report"].get("baseline")
    if baseline is not None and baseline not in systems:
        raise ConfigError(f"report.baseline: '{baseline}' is not a configured system")
    grouped: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for name, entry in dense.items():
        identity = DenseSettings.from_config(entry, f"dense.{name}").encoder_identity()
        grouped.setdefault(encoder_key(identity), (identity, []))[1].append(name)
    encoders = {
        key: Encoder(key, identity, tuple(names), any(dense[name].get("keep_embeddings", True) for name in names))
        for key, (identity, names) in grouped.items()
    }
    return Plan(checked, datasets, families, sections, systems, datasets_of, encoders)
