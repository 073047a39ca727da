# Everything rule-side in Python: config validation, the plan (datasets, systems, shards),
# paths and input functions. Stage files hold rules only.
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod

# Relative to this file, not the top Snakefile: other Snakefiles may include the rules.
SCRIPTS = (
    Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).parents[1]
    / "scripts"
)
sys.path.insert(0, str(SCRIPTS))

from beirflow.models.allocator import GLIBC_TUNABLES
from beirflow.workflow.records import (
    MODEL_KEYS,
    distinct_models,
    model_cache,
    record_path,
)
from beirflow.workflow import paths
from beirflow.dense.search import search_job_memory_mb
from beirflow.workflow.job_memory import (
    CANDIDATES_MB,
    SHARD_CORPUS_MB,
    corpus_job_memory_mb,
)
from beirflow.report.figures import PLOTS
from beirflow.workflow.config_checks import load_schema, unpinned_models
from beirflow.workflow.plan import ConfigError, build
from beirflow.data.registry import LOCAL_ONLY_DATASETS, beir_archives
from beirflow.workflow.slurm_status import install_if_present

# The SLURM executor plugin waits forever on a job cancelled with scancel ('CANCELLED by <uid>');
# see beirflow/workflow/slurm_status.py and docs/cluster.md.
_slurm_warning = install_if_present()
if _slurm_warning:
    logger.warning(_slurm_warning)

# Rules call the stage programs as `"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/<stage>.py"`. The shell
# text holds no path, so moving the checkout or the venv reruns nothing (Snakemake's code trigger
# compares that text). Jobs need these variables and nothing from PATH: without conda,
# BEIRFLOW_PYTHON is the interpreter running Snakemake (its venv); with conda, 'python' of each
# rule's env, which Snakemake puts first on the job's PATH.
os.environ["BEIRFLOW_SCRIPTS"] = str(SCRIPTS)
USES_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
os.environ["BEIRFLOW_PYTHON"] = "python" if USES_CONDA else sys.executable
# Every job runs with the hub switched off: models reach GPU jobs through rule fetch_model's records.
# The fetch itself runs with the user's own setting (the manual route: HF_HUB_OFFLINE=1 and a cache
# filled by hand), else online.
HUB_OFFLINE_FOR_FETCH = os.environ.get("HF_HUB_OFFLINE", "0") or "0"
os.environ["HF_HUB_OFFLINE"] = "1"
# One model cache for the fetch and every job, named explicitly so that compute nodes use it too.
os.environ["HF_HUB_CACHE"] = model_cache(config.get("model_cache", ""))
# ranx compiles its metrics with numba on first use (about 25 s). The compiled code is cached
# here, in the working directory, so only the first evaluate job ever pays it, also where the
# installed packages are read-only (a shared cluster venv or conda env).
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path("resources/numba-cache").resolve()))
# Large inputs that many jobs read whole (a document store, a Lucene index, model weights) are hashed
# once per node and file version; the checks that passed are remembered here (beirflow/workflow/integrity.py).
os.environ.setdefault(
    "BEIRFLOW_VERIFIED_DIR", str(Path("resources/verified").resolve())
)
# Jobs that share cores (torch's OpenMP threads beside another job's, or beside numba's and the JVM's)
# would otherwise spin while they wait: two 2-thread encoding jobs on 2 cores took 70 s each with
# OpenMP's default policy and 36 s with PASSIVE; alone, the same job takes 22 s either way.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Torch frees its activations after every layer; faulting them in again cost a CPU encoding job 9%
# of its CPU time (beirflow/models/allocator.py says which settings keep them, and why).
os.environ.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)


envvars:
    "BEIRFLOW_SCRIPTS",
    "BEIRFLOW_PYTHON",
    "NUMBA_CACHE_DIR",
    "BEIRFLOW_VERIFIED_DIR",
    "OMP_WAIT_POLICY",
    "GLIBC_TUNABLES",
    "HF_HUB_OFFLINE",
    "HF_HUB_CACHE",


# The plan, built once from the config, the schema beside these rules and the family records
# (beirflow/workflow/families/: which sections are families of systems and which rules run them); everything
# below only reads it.
try:
    PLAN = build(
        config,
        load_schema(SCRIPTS.parent / "workflow" / "schemas" / "config.schema.yaml"),
        # Under conda the jobs' environments, not Snakemake's, hold the 'package:' models.
        import_packages=not USES_CONDA,
    )
except ConfigError as error:
    raise WorkflowError(f"config key {error}") from None
config.update(PLAN.config)  # defaults filled in, disabled systems left out
workflow.localrules(*PLAN.local_rules)
DATASETS = PLAN.datasets
SYSTEMS = PLAN.systems  # system name -> family

_unpinned = unpinned_models(PLAN.sections)
if _unpinned:
    logger.warning(
        f"beirflow: {len(_unpinned)} Hugging Face model(s) at a branch, not a commit ({'; '.join(_unpinned)}): "
        "results may change when the branch moves; scripts/pin_revisions.py pins them (each job records the commit it loaded)"
    )


DATA_DIR = config["data_dir"]
ARCHIVES = beir_archives()


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_+-]*",
    system=r"[A-Za-z0-9][A-Za-z0-9_+-]*",
    family=r"[a-z][a-z0-9-]*",
    first_stage=r"[A-Za-z0-9][A-Za-z0-9_+-]*",
    fields="flat|multifield",
    shard=r"\d{4}",
    depth=r"[1-9]\d*",
    encoder=r"[A-Za-z0-9][A-Za-z0-9_.-]*-[0-9a-f]{12}",
    archive="|".join(ARCHIVES),


# ---- paths -----------------------------------------------------------------------------


def metrics_files():
    return [paths.metrics(dataset) for dataset in DATASETS]


def runs_on(system, dataset):
    return PLAN.runs_on(system, dataset)


def result_files():
    """Every run, provenance and metrics file the config asks for: targets of 'rule all' as much
    as the leaderboard, so that one deleted by a failed rerun (Snakemake removes a failed job's
    outputs) is rebuilt by the next plain run instead of leaving the leaderboard stale. And the
    markers of embeddings deleted after their searches (keep_embeddings: false).
    """
    files = metrics_files()
    for dataset in DATASETS:
        for system in SYSTEMS:
            if runs_on(system, dataset):
                files += [run_file(dataset, system), provenance_file(dataset, system)]
    return files + dropped_embeddings_markers()


def dataset_systems(wildcards):
    return PLAN.dataset_systems(wildcards.dataset)


def dataset_run_files(wildcards):
    return [
        run_file(wildcards.dataset, system) for system in dataset_systems(wildcards)
    ]


# ---- data ------------------------------------------------------------------------------


def dataset_plan(wildcards):
    return DATASETS[wildcards.dataset]


def dataset_folder(wildcards):
    return str(dataset_plan(wildcards).folder)


def declared_counts(wildcards):
    """A local folder's declared counts, for prepare_dataset to check against the files."""
    plan = dataset_plan(wildcards)
    options = []
    if plan.documents is not None:
        options.append(f"--expected-documents {plan.documents}")
    if plan.queries is not None:
        options.append(f"--expected-queries {plan.queries}")
    return " ".join(options)


def dataset_split(wildcards):
    return dataset_plan(wildcards).split


def dataset_source(wildcards):
    """A BEIR dataset needs its unzipped archive, a merged CQADupStack its merged
    folder (this workflow's markers of the shared cache), a local folder its files."""
    plan = dataset_plan(wildcards)
    if plan.merged_forums:
        return {"archive": ancient(paths.merged_ready(plan.name))}
    if plan.is_local:
        files = plan.files
        return {
            "corpus": str(files.corpus),
            "queries": str(files.queries),
            "qrels": str(files.qrels),
        }
    # ancient: a fresh download of the same archive must not rerun everything after it.
    return {"archive": ancient(paths.archive_ready(plan.archive))}


class MissingLocalDataset:
    def __init__(self, plan, paths):
        self.name, self.paths = plan.name, paths
        guide = LOCAL_ONLY_DATASETS.get(plan.name, "")
        self.message = (
            f"datasets.{plan.name}: {', '.join(str(path) for path in paths)} missing. "
            + (f"{guide} " if guide else "")
            + "See docs/datasets.md, 'Datasets you prepare yourself'."
        )


def missing_local_datasets():
    missing = []
    for plan in DATASETS.values():
        if plan.is_local:
            files = plan.files
            absent = [
                path
                for path in (files.corpus, files.queries, files.qrels)
                if not path.exists()
            ]
            if absent:
                missing.append(MissingLocalDataset(plan, absent))
    return missing


def corpus_source(wildcards):
    """The corpus plus the validation report, so nothing reads a corpus before it is checked."""
    source = dataset_source(wildcards)
    source.pop("queries", None)
    source.pop("qrels", None)
    source["report"] = paths.data_report(wildcards.dataset)
    return source


def corpus_file(wildcards):
    return str(dataset_plan(wildcards).files.corpus)


def query_shards(dataset):
    """Shard ids of a dataset's queries, for the rules of query-sharded families."""
    return PLAN.query_shards(dataset)


def document_shards(dataset):
    """Shard ids of a dataset's corpus, for the rules of document-sharded families."""
    return PLAN.document_shards(dataset)


def query_shard_count(wildcards):
    return len(query_shards(wildcards.dataset))


def document_shard_count(wildcards):
    return len(document_shards(wildcards.dataset))


def archive_url(wildcards):
    official = ARCHIVES[wildcards.archive].url
    mirror = config["data_mirror"].rstrip("/")
    return f"{mirror}/{official.rsplit('/', 1)[1]}" if mirror else official


def archive_md5(wildcards):
    return ARCHIVES[wildcards.archive].md5


# ---- systems ---------------------------------------------------------------------------


def system_entry(system):
    return PLAN.entry(system)


def system_config(wildcards):
    """The system's score-changing config as canonical JSON: a change to it reruns that system
    only. Batch sizes and resources are left out, so changing them reruns nothing."""
    return json.dumps(PLAN.result_params(wildcards.system), sort_keys=True)


def run_file(dataset, system):
    return paths.run(SYSTEMS[system], dataset, system)


def provenance_file(dataset, system):
    return paths.provenance(SYSTEMS[system], dataset, system)


def leaderboard_labels():
    """'--label' options heading each system built on others with them: 'bm25-flat » monot5-base'."""
    labels = []
    for system in SYSTEMS:
        chain = PLAN.stack_chain(system)
        if len(chain) > 1:
            heading = " » ".join(chain)
            labels.append(f"--label {shlex.quote(f'{system}={heading}')}")
    return " ".join(labels)


def bm25_index_dir(wildcards):
    fields = config["bm25"][wildcards.system]["fields"]
    return paths.bm25_index(wildcards.dataset, fields)


# ---- rerankers -------------------------------------------------------------------------


def rerank_candidates_dir(wildcards):
    entry = config["rerank"][wildcards.system]
    return paths.candidates(wildcards.dataset, entry["first_stage"], entry["depth"])


def first_stage_run(wildcards):
    return run_file(wildcards.dataset, wildcards.first_stage)


def rerank_shard_files(extension):
    def files(wildcards):
        return [
            paths.rerank_shard(wildcards.dataset, wildcards.system, shard, extension)
            for shard in query_shards(wildcards.dataset)
        ]

    return files


# ---- dense retrieval --------------------------------------------------------------------


ENCODERS = PLAN.encoders


def system_encoder(system):
    return PLAN.system_encoder(system)


def encoder_params(wildcards):
    return json.dumps(ENCODERS[wildcards.encoder].identity, sort_keys=True)


def encoder_config_key(wildcards):
    """The key an encoding job's errors name: the first, by name, of the systems sharing the encoder."""
    return f"dense.{min(ENCODERS[wildcards.encoder].systems)}"


def encoder_resource(name, default):
    """The largest need among the systems sharing the encoder, grown with each retry where it is a limit."""

    def resource(wildcards, attempt):
        entries = [
            config["dense"][system] for system in ENCODERS[wildcards.encoder].systems
        ]
        value = max(entry.get("resources", {}).get(name, default) for entry in entries)
        return value * attempt if name in ("mem_mb", "runtime") else value

    return resource


def encoder_batch_size(wildcards):
    """The largest batch size among the systems sharing the encoder ('auto' where none sets one)."""
    sizes = [
        config["dense"][system].get("batch_size", "auto")
        for system in ENCODERS[wildcards.encoder].systems
    ]
    numbers = [size for size in sizes if isinstance(size, int)]
    return str(max(numbers)) if numbers else "auto"


def dense_documents_dir(wildcards):
    return paths.embedded_corpus(wildcards.dataset, system_encoder(wildcards.system))


def encoder_search_runs(wildcards):
    """The runs of every system that searches this encoder's vectors of the dataset."""
    return [
        run_file(wildcards.dataset, system)
        for system in ENCODERS[wildcards.encoder].systems
        if runs_on(system, wildcards.dataset)
    ]


def corpus_embedding_files(dataset, encoder, extension):
    """One file per document shard of an encoder's embeddings: 'npy', 'ids' or 'json'."""
    return [
        paths.corpus_embeddings(dataset, encoder, shard, extension)
        for shard in document_shards(dataset)
    ]


def encoder_corpus_vectors(wildcards):
    return corpus_embedding_files(wildcards.dataset, wildcards.encoder, "npy")


def dropped_embeddings_markers():
    """One marker per dataset and encoder whose systems all say keep_embeddings: false."""
    return [
        paths.dropped_embeddings(dataset, encoder.key)
        for encoder in ENCODERS.values()
        if not encoder.keeps_output
        for dataset in DATASETS
        if any(runs_on(system, dataset) for system in encoder.systems)
    ]


def dense_search_inputs(wildcards):
    dataset, encoder = wildcards.dataset, system_encoder(wildcards.system)
    return {
        "queries": paths.query_embeddings(dataset, encoder, "npy"),
        "query_ids": paths.query_embeddings(dataset, encoder, "ids"),
        "vectors": corpus_embedding_files(dataset, encoder, "npy"),
        "ids": corpus_embedding_files(dataset, encoder, "ids"),
        "stats": corpus_embedding_files(dataset, encoder, "json"),
    }


# ---- models -----------------------------------------------------------------------------


# family -> systems, for the families whose entries name models
MODEL_SECTIONS = PLAN.model_sections
MODELS = distinct_models(MODEL_SECTIONS)


def system_model_records(system):
    entry = system_entry(system)
    return [
        record_path(entry[model_key], entry.get(revision_key))
        for model_key, revision_key, _ in MODEL_KEYS
        if entry.get(model_key)
    ]


def model_records(wildcards):
    """The fetch records a GPU job loads its models from (ancient: fetching again reruns nothing)."""
    if hasattr(wildcards, "encoder"):
        identity = ENCODERS[wildcards.encoder].identity
        paths = [record_path(identity["model"], identity["revision"])]
    else:
        paths = system_model_records(wildcards.system)
    return [ancient(path) for path in paths]


# ---- fusion ----------------------------------------------------------------------------


def fusion_inputs(wildcards):
    return [
        run_file(wildcards.dataset, system)
        for system in config["fusion"][wildcards.system]["runs"]
    ]


# ---- cost -------------------------------------------------------------------------------


def gpu_job_records():
    """The record every GPU-rule job writes (sidecar or provenance), for the cost table."""
    return [job.record for job in PLAN.recorded_jobs()]


# ---- resources -------------------------------------------------------------------------


def model_resource(name, default):
    """A rerank or dense system's own need (config 'resources'), grown with each retry where it is a limit."""

    def resource(wildcards, attempt):
        value = system_entry(wildcards.system).get("resources", {}).get(name, default)
        return value * attempt if name in ("mem_mb", "runtime") else value

    return resource


def dense_search_mem_mb(wildcards, attempt):
    """The search job's memory (beirflow.dense.search.search_job_memory_mb), grown with each retry."""
    entry = system_entry(wildcards.system)
    per_shard = config["shards"]["documents_per_shard"]
    return search_job_memory_mb(entry, per_shard, DATASETS[wildcards.dataset]) * attempt


def grown_with_attempt(base):
    """A CPU job's memory (MB) or time limit (minutes): the base, times the attempt after a kill for either."""

    def resource(wildcards, attempt):
        return base * attempt

    return resource


def batch_size(wildcards):
    return str(system_entry(wildcards.system).get("batch_size", "auto"))


def corpus_job_mem_mb(rule):
    """A CPU job over a whole corpus: its memory from the corpus's size (beirflow.workflow.job_memory), grown with each retry."""

    def resource(wildcards, attempt):
        documents = dataset_plan(wildcards).document_count()
        return corpus_job_memory_mb(rule, documents, attempt)

    return resource


def bm25_index_runtime(wildcards, attempt):
    # About a million documents in 2-3 minutes on 4 threads; generous for slow file systems.
    documents = dataset_plan(wildcards).document_count()
    return int((10 + documents // 100_000) * attempt)


# ---- report -----------------------------------------------------------------------------


def report_systems():
    return json.dumps(PLAN.report_systems(), sort_keys=True)


def report_datasets():
    return json.dumps(PLAN.report_datasets(), sort_keys=True)


def report_settings():
    return json.dumps(PLAN.report_settings(), sort_keys=True)


def published_files():
    """report.published, relative paths taken from the checkout (published/ ships with it)."""
    files = []
    for name in config["report"]["published"]:
        path = Path(name)
        files.append(str(path if path.is_absolute() else SCRIPTS.parent / path))
    return files


def model_provenance_files():
    return [
        provenance_file(dataset, system)
        for dataset in DATASETS
        for system in SYSTEMS
        if SYSTEMS[system] in MODEL_SECTIONS and runs_on(system, dataset)
    ]
