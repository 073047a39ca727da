# beirflow: BEIR datasets -> BM25 (Pyserini) -> rerankers and dense models -> ranx -> one leaderboard.
#
#   snakemake --cores all                          # the embedded default (config/config.yaml)
#   snakemake --cores all --configfile config/beir.yaml
#   snakemake --profile profiles/slurm --configfile config/beir.yaml
#
# A --configfile replaces the embedded default instead of being merged into it, so a grid
# never silently inherits the sample dataset; --config key=value still edits the default.
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"


# One rule file per family of systems, workflow/rules/<family>.smk, for each family record
# (scripts/beirflow/workflow/families/<family>.py), in pipeline order.
for family in PLAN.families:

    include: f"workflow/rules/{family}.smk"


include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        INPUTS.result_files(),
        rules.leaderboard.output,
        rules.report.output,
