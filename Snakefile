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


if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/bm25.smk"
include: "workflow/rules/rerank.smk"
include: "workflow/rules/dense.smk"
include: "workflow/rules/fusion.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


check_plan()


rule all:
    default_target: True
    input:
        result_files(),
        rules.leaderboard.output,
        rules.report.output,
