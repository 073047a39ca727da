"""The environment every job runs in, set in Snakemake's own process before the rules are read: jobs inherit
it locally, and the SLURM executor passes the variables named in ``JOB_VARIABLES`` (the Snakefile's
``envvars``) to every node."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from beirflow.models.allocator import GLIBC_TUNABLES
from beirflow.workflow.records import model_cache

JOB_VARIABLES = (
    "BEIRFLOW_SCRIPTS",
    "BEIRFLOW_PYTHON",
    "NUMBA_CACHE_DIR",
    "BEIRFLOW_COMPILED_DIR",
    "BEIRFLOW_VERIFIED_DIR",
    "OMP_WAIT_POLICY",
    "GLIBC_TUNABLES",
    "HF_HUB_OFFLINE",
    "HF_HUB_CACHE",
)


def set_job_environment(scripts: Path, uses_conda: bool, model_cache_setting: str) -> str:
    """Sets ``JOB_VARIABLES`` for the jobs; returns the user's own hub setting, which rule fetch_model runs with."""
    # Rules call the stage programs as `"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/<stage>.py"`. The shell
    # text holds no path, so moving the checkout or the venv reruns nothing (Snakemake's code trigger
    # compares that text). Jobs need these variables and nothing from PATH: without conda,
    # BEIRFLOW_PYTHON is the interpreter running Snakemake (its venv); with conda, 'python' of each
    # rule's env, which Snakemake puts first on the job's PATH.
    os.environ["BEIRFLOW_SCRIPTS"] = str(scripts)
    os.environ["BEIRFLOW_PYTHON"] = "python" if uses_conda else sys.executable
    # Every job runs with the hub switched off: models reach GPU jobs through rule fetch_model's records.
    # The fetch itself runs with the user's own setting (the manual route: HF_HUB_OFFLINE=1 and a cache
    # filled by hand), else online.
    hub_offline_for_fetch = os.environ.get("HF_HUB_OFFLINE", "0") or "0"
    os.environ["HF_HUB_OFFLINE"] = "1"
    # One model cache for the fetch and every job, named explicitly so that compute nodes use it too.
    os.environ["HF_HUB_CACHE"] = model_cache(model_cache_setting)
    # ranx compiles its metrics with numba on first use (about 25 s). The compiled code is cached
    # here, in the working directory, so only the first evaluate job ever pays it, also where the
    # installed packages are read-only (a shared cluster venv or conda env).
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path("resources/numba-cache").resolve()))
    # Likewise the run writer's C code (beirflow/runs/compiled.py), built by the first job that writes a run.
    os.environ.setdefault("BEIRFLOW_COMPILED_DIR", str(Path("resources/compiled").resolve()))
    # Large inputs that many jobs read whole (a document store, a Lucene index, model weights) are hashed
    # once per node and file version; the checks that passed are remembered here (beirflow/workflow/integrity.py).
    os.environ.setdefault("BEIRFLOW_VERIFIED_DIR", str(Path("resources/verified").resolve()))
    # Jobs that share cores (torch's OpenMP threads beside another job's, or beside numba's and the JVM's)
    # would otherwise spin while they wait: two 2-thread encoding jobs on 2 cores took 70 s each with
    # OpenMP's default policy and 36 s with PASSIVE; alone, the same job takes 22 s either way.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Torch frees its activations after every layer; faulting them in again cost a CPU encoding job 9%
    # of its CPU time (beirflow/models/allocator.py says which settings keep them, and why).
    os.environ.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)
    return hub_offline_for_fetch
