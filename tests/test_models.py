"""Models reach GPU jobs through rule fetch_model: fetched once on the submit host from a hub (here a
local one, tests/local_hub.py), GPU jobs offline, every failure named before a GPU job runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from beirflow.workflow import paths
from beirflow.workflow.digest import file_digest
from beirflow.workflow.records import files_to_fetch, read_record, record_path
from conftest import REPO, Workflow, sample_config
from local_hub import LocalHub

pytestmark = pytest.mark.workflow


@pytest.fixture
def hub(tiny_cross_encoder: Path, minilm: Path, tmp_path: Path) -> Iterator[LocalHub]:
    with LocalHub() as served:
        served.add("org/tiny-ce", tiny_cross_encoder)
        served.add("org/minilm", _with_exports(shutil.copytree(minilm, tmp_path / "minilm-repo")))
        served.add("org/gated", tiny_cross_encoder, gated=True)
        yield served


NOT_LOADED = ("pytorch_model.bin", "onnx/model.onnx", "onnx/config.json", "openvino/openvino_model.bin", "flax_model.msgpack",
              "tf_model.h5", "training_args.bin", "README.md")  # fmt: skip


def _with_exports(folder: Path) -> Path:
    """MiniLM's repository as the hub holds it: its weights also as .bin, ONNX, OpenVINO, Flax and TensorFlow."""
    for name in NOT_LOADED:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"never loaded " + name.encode() * 100)
    return folder


class HubWorkflow(Workflow):
    """A workdir whose jobs see the local hub as HF_ENDPOINT."""

    endpoint = ""

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_ENDPOINT": self.endpoint}
        environment.pop("HF_HUB_OFFLINE", None)
        result = subprocess.run(self.command(*args), capture_output=True, text=True, env=environment, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
            )
        return result


def _config(hub: LocalHub, cache: Path) -> dict:
    ce, minilm = hub.repositories["org/tiny-ce"].commit, hub.repositories["org/minilm"].commit
    return sample_config(
        model_cache=str(cache),
        bm25={"bm25-flat": {"fields": "flat"}},
        rerank={
            "ce": {
                "kind": "cross-encoder",
                "model": "org/tiny-ce",
                "revision": ce,
                "first_stage": "bm25-flat",
                "depth": 10,
                "precision": "fp32",
                "resources": {"gpus": 0},
            }
        },
        dense={
            "d": {
                "model": "org/minilm",
                "revision": minilm,
                "precision": "fp32",
                "hits": 100,
                "max_length": 32,
                "resources": {"gpus": 0},
            }
        },
        fusion={},
        shards={"queries_per_shard": 25, "documents_per_shard": 300},  # 2 rerank and 2 encoding jobs
    )


def _workflow(root: Path, config: dict, hub: LocalHub) -> HubWorkflow:
    workflow = HubWorkflow(root, config)
    workflow.endpoint = hub.endpoint
    return workflow


def test_each_model_is_fetched_once_and_the_gpu_jobs_run_with_the_hub_gone(hub: LocalHub, tmp_path: Path) -> None:
    workflow = _workflow(tmp_path / "work", _config(hub, tmp_path / "cache"), hub)
    assert workflow.planned_jobs("--until", "fetch_model")["fetch_model"] == 2
    workflow.run("--until", "fetch_model")
    for repo_id in ("org/tiny-ce", "org/minilm"):
        repository = hub.repositories[repo_id]
        loaded = files_to_fetch(path.relative_to(repository.folder).as_posix() for path in repository.files())
        gets = {
            path.split("/resolve/", 1)[1].split("/", 1)[1]: count
            for (method, path), count in hub.requests.items()
            if method == "GET" and path.startswith(f"/{repo_id}/resolve/")
        }
        assert sorted(gets) == loaded and set(gets.values()) == {1}, gets  # what loading reads, once
        record = read_record(workflow.path(record_path(repo_id, repository.commit)))
        assert [entry.path for entry in record.files] == loaded
    assert "model.safetensors" in loaded and "1_Pooling/config.json" in loaded and "tokenizer.json" in loaded
    assert not set(NOT_LOADED) & set(gets) and not any(Path(record.folder, name).exists() for name in NOT_LOADED)
    hub.stop()  # the rerank shards and encoding jobs, two of each, never ask a hub
    rerank_provenance, dense_provenance = (
        paths.provenance("rerank", "scifact-sample", "ce"),
        paths.provenance("dense", "scifact-sample", "d"),
    )
    workflow.run(rerank_provenance, dense_provenance)  # the GPU jobs and their merges, not the report
    assert len(list(workflow.path("logs/rerank_shard/scifact-sample/ce").glob("*.log"))) == 2
    assert len(list(workflow.path("logs/encode_documents/scifact-sample").glob("*/*.log"))) == 2

    record = read_record(workflow.path(record_path("org/tiny-ce", hub.repositories["org/tiny-ce"].commit)))
    assert record.commit == hub.repositories["org/tiny-ce"].commit and record.folder.startswith(str(tmp_path / "cache"))
    weights = next(entry for entry in record.files if entry.path == "model.safetensors")
    assert weights.sha256 == weights.hub_sha256 == file_digest(Path(record.folder) / "model.safetensors")
    provenance = json.loads(workflow.path(rerank_provenance).read_text())
    assert provenance["models"] == [record.to_dict()]  # the run cites the record: commit and every file's sha256
    assert json.loads(workflow.path(dense_provenance).read_text())["models"][0]["name"] == "org/minilm"


UNFETCHABLE = {  # reranker name -> (model, revision, the error its fetch must name)
    "bad-revision": ("org/tiny-ce", "0" * 40, "RevisionNotFoundError"),
    "no-repository": ("org/no-such-model", "0" * 40, "RepositoryNotFoundError"),
    "gated": ("org/gated", "main", "GatedRepoError"),
}


def test_a_model_that_cannot_be_fetched_fails_its_fetch_naming_it_and_no_gpu_job_runs(hub: LocalHub, tmp_path: Path) -> None:
    """One workflow with three rerankers, each failing its fetch in its own way (a Snakemake run per
    failure cost 7 CPU-seconds more each)."""
    config = _config(hub, tmp_path / "cache")
    config["dense"] = {}
    config["rerank"] = {
        name: {**config["rerank"]["ce"], "model": model, "revision": revision}
        for name, (model, revision, _) in UNFETCHABLE.items()
    }
    workflow = _workflow(tmp_path / "work", config, hub)
    result = workflow.run("--keep-going", check=False)
    assert result.returncode != 0
    for name, (model, revision, error) in UNFETCHABLE.items():
        log = workflow.path(f"logs/fetch_model/{Path(record_path(model, revision)).stem}.log").read_text()
        expected = f"config key rerank.{name}.model: model '{model}' at revision {revision} cannot be fetched: {error}"
        assert expected in log, log[-2000:]
    assert not workflow.path("logs/rerank_shard").exists()  # no GPU job of them was started
    assert workflow.path(paths.run("bm25", "scifact-sample", "bm25-flat")).is_file()  # the rest of the grid went on


def test_a_download_killed_mid_file_leaves_no_record_and_the_next_fetch_completes(hub: LocalHub, tmp_path: Path) -> None:
    commit = hub.repositories["org/tiny-ce"].commit
    record = tmp_path / "record.json"
    command = [
        sys.executable,
        str(REPO / "scripts" / "fetch_model.py"),
        "--model",
        "org/tiny-ce",
        "--revision",
        commit,
        "--key",
        "rerank.ce.model",
        "--record",
        str(record),
    ]
    environment = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "0"}
    hub.stall_after_bytes = 100_000  # the weights (4 MB) stop arriving after 100 kB
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    weights = f"/org/tiny-ce/resolve/{commit}/model.safetensors"
    deadline = time.monotonic() + 60
    while hub.requests[("GET", weights)] == 0:
        assert process.poll() is None and time.monotonic() < deadline, "the fetch never asked for the weights"
        time.sleep(0.05)
    time.sleep(0.5)
    process.kill()
    process.wait()
    assert not record.exists()
    snapshot = tmp_path / "cache" / "models--org--tiny-ce" / "snapshots" / commit
    assert not (snapshot / "model.safetensors").exists()  # huggingface_hub keeps the part as *.incomplete
    hub.stall_after_bytes = None
    subprocess.run(command, env=environment, check=True, capture_output=True)
    fetched = read_record(record)
    weights_entry = next(entry for entry in fetched.files if entry.path == "model.safetensors")
    assert (
        weights_entry.sha256
        == weights_entry.hub_sha256
        == file_digest(hub.repositories["org/tiny-ce"].folder / "model.safetensors")
    )


def test_two_workflows_sharing_one_cache_fetch_once(hub: LocalHub, tmp_path: Path) -> None:
    workflows = [_workflow(tmp_path / f"work-{index}", _config(hub, tmp_path / "cache"), hub) for index in range(2)]
    environment = {**os.environ, "HF_ENDPOINT": hub.endpoint}
    environment.pop("HF_HUB_OFFLINE", None)
    processes = [
        subprocess.Popen(
            workflow.command("--until", "fetch_model"),
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for workflow in workflows
    ]
    errors = [process.communicate()[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [error[-2000:] for error in errors]
    gets = [count for (method, path), count in hub.requests.items() if method == "GET" and "/resolve/" in path]
    assert gets and set(gets) == {1}, hub.requests


@pytest.mark.parametrize(
    ("repository", "fetched"),
    [
        (  # a sentence-transformers repository: safetensors at the top, only .bin in its Dense module
            ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "onnx/model.onnx",
             "onnx/config.json", "2_Dense/config.json", "2_Dense/pytorch_model.bin", "modules.json", "tokenizer.json",
             "spiece.model", "README.md", ".gitattributes"],
            ["2_Dense/config.json", "2_Dense/pytorch_model.bin", "config.json", "model.safetensors", "modules.json",
             "spiece.model", "tokenizer.json"],
        ),
        (  # an older checkpoint in .bin shards only, with its training state
            ["config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
             "pytorch_model.bin.index.json", "training_args.bin", "optimizer.pt", "tokenizer_config.json"],
            ["config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
             "pytorch_model.bin.index.json", "tokenizer_config.json"],
        ),
        (  # a PEFT adapter
            ["adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"],
            ["adapter_config.json", "adapter_model.safetensors"],
        ),
    ],
    ids=["sentence-transformers", "bin-shards", "adapter"],
)  # fmt: skip
def test_a_fetch_takes_what_loading_reads_and_one_weight_format(repository: list[str], fetched: list[str]) -> None:
    assert files_to_fetch(repository) == fetched
