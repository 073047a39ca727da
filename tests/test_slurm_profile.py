"""The SLURM profile's settings as plugin 2.8.0 reads them: its throttles are set, and the recipe it gives for
clusters that take GPUs only as --gres makes the plugin's own code write --gres and no --gpus."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO

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
