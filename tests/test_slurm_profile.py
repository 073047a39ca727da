"""The SLURM profile's settings as plugin 2.8.0 reads them: its throttles are set, and the recipe it gives for
clusters that take GPUs only as --gres makes the plugin's own code write --gres and no --gpus; and
scripts/sbatch_preview.py prints, without submitting, the sbatch line each rule's jobs get."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO, dense_config, sbatch_preview

PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "profile.v9+.yaml").read_text(encoding="utf-8"))


class _Resources(dict):
    """A job's resources as the plugin reads them: mapping access and attributes."""

    def __getattr__(self, name: str) -> object:
        return self[name]


def _gres(resources: dict) -> str:
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    return set_gres_string(SimpleNamespace(resources=_Resources(resources)))


def test_the_profile_throttles_submissions_and_status_checks() -> None:
    rate, _, span = str(PROFILE["max-jobs-per-timespan"]).partition("/")
    assert float(rate) <= 20 and span == "1s"
    assert 0 < float(PROFILE["max-status-checks-per-second"]) <= 1
    assert int(PROFILE["slurm-array-limit"]) >= 100


@pytest.mark.parametrize(
    ("resources", "sbatch"),
    [
        ({"gpu": 1}, " --gpus=1"),  # what the GPU rules ask for by default
        ({"gpu": 2, "gpu_model": "a100"}, " --gpus=a100:2"),  # the gpu_model recipe
        ({"gres": "gpu:a100:1", "gpu": 0}, " --gres=gpu:a100:1"),  # the gres-only recipe: no --gpus
    ],
)
def test_the_gpu_recipes_give_the_sbatch_options_the_profile_says(resources: dict, sbatch: str) -> None:
    assert _gres(resources) == sbatch


def test_the_preview_prints_the_sbatch_line_of_each_gpu_rule_and_submits_nothing(make_workflow) -> None:
    config = dense_config()
    for family in ("rerank", "dense"):
        for entry in config[family].values():
            entry["resources"] = {"gpus": 1, "mem_mb": 16000, "runtime": 90}
    # a second reranker of the same candidates that needs more: its shard is ready with the first one's
    config["rerank"]["minilm-rerank-long"] = {**config["rerank"]["minilm-rerank"], "max_length": 128}
    config["rerank"]["minilm-rerank-long"]["resources"] = {"gpus": 1, "mem_mb": 32000, "runtime": 90}
    workflow = make_workflow(config)
    plain = {rule: "\n".join(lines) for rule, lines in sbatch_preview(workflow).items()}
    assert "--gpus=1" in plain["rerank_shard"] and "--gres" not in plain["rerank_shard"]
    assert "-t 90 --mem 16000" in plain["encode_documents"]
    # the profile batches document shards into one array; 3 shards of 250 documents here
    assert "3 jobs, sent as arrays" in plain["encode_documents"] and "--array=1-3" in plain["encode_documents"]
    assert "warning" not in plain["encode_documents"]  # one model: every task asks for the same
    assert "2 jobs, sent as arrays" in plain["rerank_shard"]
    assert "# warning: these jobs ask for 2 different sets of mem_mb," in plain["rerank_shard"]
    assert not {"leaderboard", "report", "all"} & set(plain)  # local rules never go through sbatch

    recipe = {
        rule: "\n".join(lines)
        for rule, lines in sbatch_preview(
            workflow, "--set-resources", "rerank_shard:gres=gpu:a100:1", "rerank_shard:gpu=0"
        ).items()
    }
    assert "--gres=gpu:a100:1" in recipe["rerank_shard"] and "--gpus" not in recipe["rerank_shard"]
    assert "--gpus=1" in recipe["encode_documents"]
    assert not list(workflow.root.glob("results/**/*.record.json"))  # nothing ran
