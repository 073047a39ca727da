"""What every stage program shares: logging and one clear line when a job fails."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from beirflow.workflow.errors import BeirflowError
from beirflow.workflow.integrity import Spent

log = logging.getLogger("beirflow")


def setup_logging() -> None:
    """Log to stderr, which the rules send to ``logs/<rule>/...``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    for variable in ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "CUDA_VISIBLE_DEVICES", "GLIBC_TUNABLES"):
        if variable in os.environ:
            log.info("%s=%s", variable, os.environ[variable])


def run_stage(stage: str, job: str, main: Callable[[], None]) -> None:
    """Run ``main``; on failure log one line naming the stage and the job (dataset, system) and exit 1."""
    setup_logging()
    try:
        main()
        if Spent.files:
            log.info("integrity: %d records written or checked in %.3f s", Spent.files, Spent.seconds)
    except BeirflowError as error:
        log.error("%s failed for %s: %s", stage, job, error)
        sys.exit(1)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "(no message)"
        log.exception("%s failed for %s: %s: %s", stage, job, type(error).__name__, reason)
        sys.exit(1)
