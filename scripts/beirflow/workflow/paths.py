"""Where every file of a workflow lives, spelled once: the rules' inputs and outputs, the input
functions of ``workflow/rules/common.smk``, and the tests read these (in the spirit of
:class:`beirflow.data.beir.BeirFiles` and PyPSA-Eur's ``path_provider``).

Each function returns a path relative to the working directory. An argument left out stays a
Snakemake wildcard: ``run("bm25")`` is the ``bm25_search`` rule's output pattern
``results/{dataset}/bm25/{system}/run.trec``, and ``run("bm25", "scifact", "bm25-flat")`` one file
of it. Nothing parses a path back: a stage's sidecar records its own rule, dataset and system.
"""

from __future__ import annotations

RESULTS = "results"
LOGS = "logs"
BENCHMARKS = "benchmarks"

DATASET = "{dataset}"
SYSTEM = "{system}"


# ---- the data stage


def archive_ready(archive: str = "{archive}") -> str:
    """This workflow's marker of a BEIR archive fetched into the shared data cache."""
    return f"{RESULTS}/data_cache/{archive}.ready"


def merged_ready(dataset: str = DATASET) -> str:
    """This workflow's marker of a CQADupStack forum merged in the shared data cache."""
    return f"{RESULTS}/data_cache/merged/{dataset}.ready"


def prepared(name: str, dataset: str = DATASET) -> str:
    """A validated split file: ``queries.jsonl``, ``qrels.tsv``, ``report.json``, ``documents.sqlite``."""
    return f"{RESULTS}/{dataset}/data/{name}"


def queries(dataset: str = DATASET) -> str:
    return prepared("queries.jsonl", dataset)


def qrels(dataset: str = DATASET) -> str:
    return prepared("qrels.tsv", dataset)


def data_report(dataset: str = DATASET) -> str:
    return prepared("report.json", dataset)


def document_store(dataset: str = DATASET) -> str:
    return prepared("documents.sqlite", dataset)


def shards(kind: str, dataset: str = DATASET) -> str:
    """The folder of ``corpus`` or ``queries`` shards."""
    return f"{RESULTS}/{dataset}/shards/{kind}"


# ---- first stage and candidates


def bm25_index(dataset: str = DATASET, fields: str = "{fields}") -> str:
    return f"{RESULTS}/{dataset}/bm25/index-{fields}"


def candidates(dataset: str = DATASET, first_stage: str = "{first_stage}", depth: object = "{depth}") -> str:
    """The folder of a first stage's top-``depth`` candidates, one file per query shard."""
    return f"{RESULTS}/{dataset}/candidates/{first_stage}/top{depth}"


# ---- models' outputs


MODEL_RECORDS = f"{RESULTS}/models"


def model_record(model: str = "{model}") -> str:
    """What ``fetch_model`` recorded of a model (named by :func:`beirflow.workflow.records.record_name`): where it
    is, its revision, its files' digests."""
    return f"{MODEL_RECORDS}/{model}.json"


def rerank_shard(dataset: str = DATASET, system: str = SYSTEM, shard: str = "{shard}", extension: str = "{extension}") -> str:
    """A rerank job's output: ``trec`` (its run) or ``json`` (its record)."""
    return f"{RESULTS}/{dataset}/rerank/{system}/shards/{shard}.{extension}"


def embeddings(dataset: str = DATASET, encoder: str = "{encoder}") -> str:
    """The folder of one encoder's vectors of a dataset, shared by every system that uses the encoder."""
    return f"{RESULTS}/{dataset}/embeddings/{encoder}"


def embedded_corpus(dataset: str = DATASET, encoder: str = "{encoder}") -> str:
    """The folder of one encoder's document shards of a dataset."""
    return f"{embeddings(dataset, encoder)}/corpus"


def corpus_embeddings(
    dataset: str = DATASET, encoder: str = "{encoder}", shard: str = "{shard}", extension: str = "{extension}"
) -> str:
    """One document shard's ``npy`` (vectors), ``ids`` or ``json`` (its record)."""
    return f"{embedded_corpus(dataset, encoder)}/{shard}.{extension}"


def query_embeddings(dataset: str = DATASET, encoder: str = "{encoder}", extension: str = "{extension}") -> str:
    return f"{embeddings(dataset, encoder)}/queries.{extension}"


def dropped_embeddings(dataset: str = DATASET, encoder: str = "{encoder}") -> str:
    """The marker of an encoder's corpus vectors deleted after its searches (``keep_embeddings: false``)."""
    return f"{embeddings(dataset, encoder)}/dropped.json"


def shared_unit(family: str, dataset: str = DATASET, unit: str = "{encoder}") -> str:
    """The folder of a unit of work a family's systems share on a dataset (an encoder's outputs), for a
    family whose record declares shared units."""
    return f"{RESULTS}/{dataset}/{family}-shared/{unit}"


def shared_unit_shard(
    family: str, dataset: str = DATASET, unit: str = "{encoder}", shard: str = "{shard}", extension: str = "{extension}"
) -> str:
    """One document shard's output of a shared unit: the shard's data, ``json`` its record."""
    return f"{shared_unit(family, dataset, unit)}/corpus/{shard}.{extension}"


# ---- runs and their evaluation


def system_folder(family: str, dataset: str = DATASET, system: str = SYSTEM) -> str:
    return f"{RESULTS}/{dataset}/{family}/{system}"


def run(family: str, dataset: str = DATASET, system: str = SYSTEM) -> str:
    """A system's merged run of a dataset (TREC format)."""
    return f"{system_folder(family, dataset, system)}/run.trec"


def provenance(family: str, dataset: str = DATASET, system: str = SYSTEM) -> str:
    """What made the run: settings, model records, job ids, digests."""
    return f"{system_folder(family, dataset, system)}/provenance.json"


def metrics(dataset: str = DATASET) -> str:
    """Every system's evaluation of one dataset."""
    return f"{RESULTS}/{dataset}/metrics.json"


# ---- the whole grid


LEADERBOARD = f"{RESULTS}/leaderboard"
REPORT = f"{RESULTS}/report"


def cost() -> str:
    return f"{LEADERBOARD}/cost.csv"


def leaderboard(extension: str) -> str:
    """``csv``, ``md`` or ``html``."""
    return f"{LEADERBOARD}/leaderboard.{extension}"


def per_query() -> str:
    """Every per-query value of the grid, one tidy table: dataset, system, query, metric, value."""
    return f"{LEADERBOARD}/per_query.parquet"


def report(name: str) -> str:
    """A file of the report: ``report.html``, ``report.md``, ``significance.csv``, ..."""
    return f"{REPORT}/{name}"


def plots() -> str:
    return f"{REPORT}/plots"


def plot(name: str) -> str:
    return f"{plots()}/{name}.png"


# ---- logs and benchmarks


def log(rule: str, *parts: str) -> str:
    """``logs/<rule>/<parts...>.log``, one per job."""
    return f"{LOGS}/{rule}/{'/'.join(parts)}.log"


def benchmark(rule: str, *parts: str) -> str:
    """Snakemake's ``benchmark:`` file of a job (wall time, peak memory)."""
    return f"{BENCHMARKS}/{rule}/{'/'.join(parts)}.tsv"
