"""Dense retrieval through Snakemake: the sample in 3 document shards, caching by encoder identity, a killed encode job."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from beirflow.dense.search import DenseSettings, encoder_key, read_embeddings, search
from beirflow.runs.trec import read_run
from beirflow.workflow import paths
from conftest import MINILM, REPO, Workflow, fork

pytestmark = pytest.mark.workflow

KEY = encoder_key(DenseSettings.from_config(MINILM).encoder_identity())
EMBEDDINGS = paths.embeddings("scifact-sample", KEY)


def _shards(workflow: Workflow) -> list:
    folder = workflow.path(f"{EMBEDDINGS}/corpus")
    return [read_embeddings(folder / f"{shard}.npy", folder / f"{shard}.ids") for shard in ("0000", "0001", "0002")]


def test_three_shards_are_encoded_searched_fused_and_ranked(dense: Workflow) -> None:
    shards = _shards(dense)
    assert [len(shard.ids) for shard in shards] == [250, 250, 100]
    assert all(shard.vectors.dtype == np.float16 and shard.dimension == 384 for shard in shards)
    run = read_run(dense.path(paths.run("dense", "scifact-sample", "minilm")))
    assert len(run) == 50 and all(len(hits) == 100 for hits in run.values())
    fused = read_run(dense.path(paths.run("fusion", "scifact-sample", "bm25+minilm")))
    assert set(fused) == set(run)
    markdown = dense.path(paths.leaderboard("md")).read_text()
    assert "| dataset | bm25-flat | bm25-flat » minilm-rerank | minilm | bm25+minilm |" in markdown


def test_the_merged_run_equals_one_search_over_the_whole_corpus(dense: Workflow) -> None:
    shards = _shards(dense)
    queries = read_embeddings(dense.path(f"{EMBEDDINGS}/queries.npy"), dense.path(f"{EMBEDDINGS}/queries.ids"))
    whole = type(shards[0])(
        [doc_id for shard in shards for doc_id in shard.ids], np.concatenate([shard.vectors for shard in shards]), Path("all.npy")
    )
    expected = search(queries, [whole], whole.ids, 100)
    run = read_run(dense.path(paths.run("dense", "scifact-sample", "minilm")))
    assert {query_id: sorted(hits.items(), key=lambda hit: (-hit[1], hit[0])) for query_id, hits in run.items()} == expected


def test_stored_embeddings_equal_sentence_transformers_encode(dense: Workflow) -> None:
    from sentence_transformers import SentenceTransformer

    from beirflow.data.beir import document_text, iter_corpus
    from model_builders import minilm_folder

    documents = [document for _, document in iter_corpus(dense.path(paths.shards("corpus", "scifact-sample")) / "0002.jsonl")]
    model = SentenceTransformer(str(minilm_folder()), device="cpu")
    model.max_seq_length = MINILM["max_length"]
    reference = model.encode([document_text(document) for document in documents], convert_to_numpy=True)
    stored = _shards(dense)[2]
    assert stored.ids == [document.doc_id for document in documents]
    ours = np.asarray(stored.vectors, dtype=np.float32)
    cosines = (ours * reference).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosines.min() > 1 - 1e-5


def test_an_encode_jobs_log_shows_its_progress_with_rate_and_eta(dense: Workflow) -> None:
    """What `tail -f` shows of a long encoding job: done and total, rate, elapsed and time left."""
    import re

    log = dense.path(f"logs/encode_documents/scifact-sample/{KEY}/0000.log").read_text()
    assert "encoding documents of 0000.jsonl: 0/250 texts" in log
    assert re.search(r"encoding documents of 0000\.jsonl: 250/250 texts \(100%\), [\d,.]+ texts/s, elapsed \d+s, ETA 0s", log), (
        log[-2000:]
    )


def test_adding_a_dense_model_schedules_only_its_jobs(dense: Workflow) -> None:
    config = copy.deepcopy(dense.config)
    config["dense"]["minilm-bf16"] = {**MINILM, "precision": "bf16"}
    assert dense.planned_with(config) == {
        "encode_documents": 3,
        "encode_queries": 1,
        "dense_search": 1,
        "evaluate": 1,
        "cost": 1,
        "leaderboard": 1,
        "report": 1,
        "all": 1,
    }


def test_a_second_system_on_the_same_encoder_computes_no_embeddings(dense: Workflow) -> None:
    config = copy.deepcopy(dense.config)
    config["dense"]["minilm-hnsw"] = {
        **MINILM,
        "index": "HNSW32",
        "hits": 10,
        "batch_size": 8,
        "resources": {"gpus": 0, "mem_mb": 8000},
    }
    assert dense.planned_with(config) == {"dense_search": 1, "evaluate": 1, "cost": 1, "leaderboard": 1, "report": 1, "all": 1}


def test_renaming_disabling_or_inserting_a_system_before_the_encoders_first_encodes_nothing(dense: Workflow) -> None:
    """Which system names an encoding job's errors is no rerun trigger: the corpus is encoded once per encoder."""
    sibling = {**MINILM, "hits": 10, "batch_size": 64}
    renamed = copy.deepcopy(dense.config)
    renamed["dense"] = {"minilm-renamed": MINILM}
    renamed["fusion"]["bm25+minilm"]["runs"] = ["bm25-flat", "minilm-renamed"]
    inserted = copy.deepcopy(dense.config)
    inserted["dense"] = {"a-minilm-first": sibling, "minilm": MINILM}
    disabled = copy.deepcopy(dense.config)
    disabled["dense"] = {"a-minilm-first": sibling, "minilm": {**MINILM, "enabled": False}}
    disabled["fusion"] = {}
    for config in (renamed, inserted, disabled):
        planned = dense.planned_with(config)
        assert "encode_documents" not in planned and "encode_queries" not in planned, planned
        assert planned.get("dense_search") == 1, planned


def test_changing_the_pooling_recomputes_the_embeddings_and_what_follows(dense: Workflow) -> None:
    config = copy.deepcopy(dense.config)
    config["dense"]["minilm"]["pooling"] = "cls"
    assert dense.planned_with(config) == {
        "encode_documents": 3,
        "encode_queries": 1,
        "dense_search": 1,
        "fuse": 1,
        "evaluate": 1,
        "cost": 1,
        "leaderboard": 1,
        "report": 1,
        "all": 1,
    }


def test_batch_size_and_resources_rerun_nothing(dense: Workflow) -> None:
    config = copy.deepcopy(dense.config)
    config["dense"]["minilm"].update(batch_size=3, resources={"gpus": 2, "mem_mb": 64000, "runtime": 999})
    assert dense.planned_with(config) == {}


def test_changing_the_fusion_method_reruns_the_fusion_only(dense: Workflow) -> None:
    config = copy.deepcopy(dense.config)
    config["fusion"]["bm25+minilm"]["method"] = "combsum"
    assert dense.planned_with(config) == {"fuse": 1, "evaluate": 1, "leaderboard": 1, "report": 1, "all": 1}


def search_files(embeddings: Path, corpus: Path, shards: list[str]) -> list[str]:
    """dense_search.py's inputs: the queries' files and each document shard's, as rule dense_search names them."""
    queries = ["--queries", str(embeddings / "queries.npy"), "--query-ids", str(embeddings / "queries.ids")]
    queries += ["--query-stats", str(embeddings / "queries.json")]
    return queries + [
        option
        for extension, name in (("npy", "--vectors"), ("ids", "--ids"), ("json", "--stats"))
        for option in [name, *(str(corpus / f"{shard}.{extension}") for shard in shards)]
    ]


def test_a_shard_whose_count_differs_from_its_ids_is_rejected_not_merged(dense: Workflow, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    shutil.copytree(dense.path(f"{EMBEDDINGS}/corpus"), folder)
    ids = (folder / "0001.ids").read_text().splitlines()
    (folder / "0001.ids").write_text("\n".join(ids[:-1]) + "\n")
    output = tmp_path / "run.trec"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "dense_search.py"), *search_files(dense.path(EMBEDDINGS), folder, ["0000", "0001", "0002"]), "--params", '{"model": "m", "hits": 10}', "--key", "dense.minilm", "--output", str(output),
         "--provenance", str(tmp_path / "provenance.json"), "--dataset", "scifact-sample", "--system", "minilm"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        f"{folder / '0001.ids'}: not what rule encode_documents (dataset=scifact-sample, system={KEY}, shard=0001) wrote"
        in result.stderr
    )
    assert not output.exists() and not (tmp_path / "provenance.json").exists()


def test_a_killed_encode_job_is_redone_and_the_rerun_equals_the_unkilled_run(tmp_path: Path, dense: Workflow) -> None:
    workflow = fork(dense, tmp_path / "killed")
    log = workflow.path(f"logs/encode_documents/scifact-sample/{KEY}/0000.log")
    log.unlink()
    process = subprocess.Popen(
        workflow.command("--forcerun", f"{EMBEDDINGS}/corpus/0000.npy"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    try:
        while not log.exists():
            assert process.poll() is None, "the workflow ended before the encode job started"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # inside the job: the model is loading or encoding
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not workflow.path(f"{EMBEDDINGS}/corpus/0000.npy").exists()
    # The same command again. (A plain run would keep the older search run: Snakemake does not rebuild a
    # missing intermediate whose consumers are complete, and that run is still the unfaulted one.)
    workflow.run("--unlock")
    workflow.run("--rerun-incomplete", "--forcerun", f"{EMBEDDINGS}/corpus/0000.npy")
    for relative in (
        f"{EMBEDDINGS}/corpus/0000.npy",
        f"{EMBEDDINGS}/corpus/0000.ids",
        paths.run("dense", "scifact-sample", "minilm"),
        paths.leaderboard("csv"),
    ):
        assert workflow.path(relative).read_bytes() == dense.path(relative).read_bytes(), relative


def test_keep_embeddings_false_deletes_the_vectors_after_the_search_and_a_rerun_of_the_search_encodes_again(
    dense: Workflow, tmp_path: Path
) -> None:
    """The per-system key that trades disk for a re-encode: on a copy of the finished run, it plans only the
    deletion; the run, the ids and the records stay; a plain rerun plans nothing; a search that must run
    again (another 'hits') has the corpus encoded first, then deleted again."""
    import json

    workflow = fork(dense, tmp_path / "dropped")
    config = copy.deepcopy(dense.config)
    config["dense"]["minilm"]["keep_embeddings"] = False
    workflow.write_config(config)
    assert workflow.planned_jobs() == {"drop_embeddings": 1, "all": 1}
    vectors = sorted(workflow.path(f"{EMBEDDINGS}/corpus").glob("*.npy"))
    sizes = sum(path.stat().st_size for path in vectors)
    run_before = workflow.path(paths.run("dense", "scifact-sample", "minilm")).read_bytes()
    workflow.run()
    assert len(vectors) == 3 and not any(path.exists() for path in vectors)
    assert len(list(workflow.path(f"{EMBEDDINGS}/corpus").glob("*.ids"))) == 3
    assert len(list(workflow.path(f"{EMBEDDINGS}/corpus").glob("????.json"))) == 3  # the cost table's records
    marker = json.loads(workflow.path(paths.dropped_embeddings("scifact-sample", KEY)).read_text())
    assert marker["bytes_freed"] == sizes and len(marker["deleted"]) == 3
    assert workflow.path(paths.run("dense", "scifact-sample", "minilm")).read_bytes() == run_before
    assert workflow.path(paths.leaderboard("csv")).read_bytes() == dense.path(paths.leaderboard("csv")).read_bytes()
    assert workflow.planned_jobs() == {}
    deeper = copy.deepcopy(config)
    deeper["dense"]["minilm"]["hits"] = 50
    planned = workflow.variant(deeper).planned_jobs()
    assert planned.get("encode_documents") == 3 and planned.get("drop_embeddings") == 1, planned
    assert "encode_queries" not in planned  # the query vectors are kept
