# The rules' Python: the config validated into the plan, and the rules' inputs read from it
# (beirflow/workflow/rule_inputs.py, and each family's in its record's module). Stage files hold rules only.
import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod

# Relative to this file, not the top Snakefile: other Snakefiles may include the rules.
SCRIPTS = (
    Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).parents[1]
    / "scripts"
)
sys.path.insert(0, str(SCRIPTS))

from beirflow.workflow import paths
from beirflow.workflow.environment import JOB_VARIABLES, set_job_environment
from beirflow.workflow.job_memory import CANDIDATES_MB, SHARD_CORPUS_MB
from beirflow.workflow.records import distinct_models
from beirflow.workflow.rule_inputs import RuleInputs, grown_with_attempt
from beirflow.report.figures import PLOTS
from beirflow.workflow.config_checks import load_schema, unpinned_models
from beirflow.workflow.plan import ConfigError, build
from beirflow.data.registry import beir_archives
from beirflow.workflow.slurm_status import install_if_present

# The SLURM executor plugin waits forever on a job cancelled with scancel ('CANCELLED by <uid>');
# see beirflow/workflow/slurm_status.py and docs/cluster.md.
_slurm_warning = install_if_present()
if _slurm_warning:
    logger.warning(_slurm_warning)

USES_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
HUB_OFFLINE_FOR_FETCH = set_job_environment(
    SCRIPTS, USES_CONDA, config.get("model_cache", "")
)


envvars:
    *JOB_VARIABLES,


# The plan, built once from the config, the schema beside these rules and the family records
# (beirflow/workflow/families/: which sections are families of systems and which rules run them); everything
# below only reads it.
try:
    PLAN = build(
        config,
        load_schema(SCRIPTS.parent / "workflow" / "schemas" / "config.schema.yaml"),
        # Under conda the jobs' environments, not Snakemake's, hold the 'package:' models.
        import_packages=not USES_CONDA,
    )
except ConfigError as error:
    raise WorkflowError(f"config key {error}") from None
config.update(PLAN.config)  # defaults filled in, disabled systems left out
workflow.localrules(*PLAN.local_rules)

_unpinned = unpinned_models(PLAN.sections)
if _unpinned:
    logger.warning(
        f"beirflow: {len(_unpinned)} Hugging Face model(s) at a branch, not a commit ({'; '.join(_unpinned)}): "
        "results may change when the branch moves; scripts/pin_revisions.py pins them (each job records the commit it loaded)"
    )

DATA_DIR = PLAN.config["data_dir"]
ARCHIVES = beir_archives()
INPUTS = RuleInputs(PLAN, SCRIPTS.parent, ARCHIVES)
MODELS = distinct_models(
    PLAN.model_sections
)  # each (model, revision) and adapter, fetched once


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_+-]*",
    system=r"[A-Za-z0-9][A-Za-z0-9_+-]*",
    family=r"[a-z][a-z0-9-]*",
    first_stage=r"[A-Za-z0-9][A-Za-z0-9_+-]*",
    fields="flat|multifield",
    shard=r"\d{4}",
    depth=r"[1-9]\d*",
    encoder=r"[A-Za-z0-9][A-Za-z0-9_.-]*-[0-9a-f]{12}",
    archive="|".join(ARCHIVES),
