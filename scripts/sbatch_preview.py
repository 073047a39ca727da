"""Print the sbatch line each rule's jobs would be submitted with, and submit nothing.

    python scripts/sbatch_preview.py --profile profiles/slurm --configfile config/paper.yaml \
        --set-resources 'rerank_shard:gres="gpu:a100:1"' rerank_shard:gpu=0

The arguments are snakemake's own. Snakemake plans the run as a dry run with the SLURM executor (so the
profile's default-resources, set-resources and the rules' resources are evaluated exactly as for a real
run), and for the first job of every rule the SLURM plugin's own code writes the sbatch options. What the
plugin asks the cluster at submission time is shown as a placeholder: the job name (a fresh id per run),
and the partition or account when no resource names one (the plugin then takes the cluster's defaults).
An array's --mem is shown without the few MB the plugin adds for the payload of its tasks' commands.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

RUN_NAME = "<run-uuid>"


def _quoted_or_default(value: Any, option: str, default: str) -> str:
    from snakemake_executor_plugin_slurm.submit_string import safe_quote

    return f"{option} {safe_quote(str(value))}" if value else default


def sbatch_line(job: Any, *, array_size: int, settings: Any) -> str:
    """The options the plugin's run_job (or run_array_jobs) writes for this job, without the command, under the
    plugin's ``settings`` (requeue, QoS, reservation, log folder, array limit)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import get_job_wildcards, set_gres_string

    wildcards = get_job_wildcards(job)
    folder = Path(settings.logdir or ".snakemake/slurm_logs") / f"rule_{job.name}"  # the plugin's default
    logfile = folder / "%A_%a.log" if array_size > 1 else folder / wildcards / "%j.log"
    params = {
        "run_uuid": RUN_NAME,
        "slurm_logfile": logfile,
        "comment_str": f"rule_{job.name}" + (f"_wildcards_{wildcards}" if wildcards else ""),
        "account": _quoted_or_default(job.resources.get("slurm_account"), "-A", "-A <default-account>"),
        "partition": _quoted_or_default(job.resources.get("slurm_partition"), "-p", "-p <default-partition>"),
        "workdir": None,
    }
    call = get_submit_command(job, params, settings=settings) + set_gres_string(job)
    if array_size > 1:
        call += f" --array=1-{min(array_size, settings.array_limit)}"
    return call


def _runs_on_submit_host(job: Any) -> bool:
    """A local rule (or one with no command) is never submitted. job.is_local cannot tell: in a dry run
    every job counts as local, so the workflow's own list is read."""
    workflow = job.dag.workflow
    return bool(job.rule.norun or job.rule.name in workflow._localrules)


def _collect_jobs() -> dict[str, list[Any]]:
    """Make the dry run hand every job it would run to us, grouped by rule, in submission order."""
    from snakemake.executors import dryrun

    jobs: dict[str, list[Any]] = defaultdict(list)
    run_job = dryrun.Executor.run_job

    def collecting_run_job(self: Any, job: Any) -> None:
        for single in job.jobs if job.is_group() else [job]:
            if not _runs_on_submit_host(single):
                jobs[single.name].append(single)
        run_job(self, job)

    dryrun.Executor.run_job = collecting_run_job
    return jobs


# The resources the plugin writes into an sbatch line.
SUBMITTED_RESOURCES = (
    "runtime",
    "mem_mb",
    "mem_mb_per_cpu",
    "gpu",
    "gpu_model",
    "gres",
    "cpus_per_task",
    "constraint",
    "slurm_partition",
    "slurm_account",
    "qos",
    "slurm_extra",
)


def resource_sets(jobs: list[Any]) -> list[dict[str, Any]]:
    """The distinct sets of submitted resources among ``jobs``, in order of first appearance."""
    distinct: list[dict[str, Any]] = []
    for job in jobs:
        submitted = {name: job.resources.get(name) for name in SUBMITTED_RESOURCES}
        if submitted not in distinct:
            distinct.append(submitted)
    return distinct


def slurm_settings(argv: list[str]) -> Any:
    """The SLURM plugin's settings as snakemake resolves them from these arguments and the profile they name."""
    from snakemake.cli import parse_args
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    _, args = parse_args([*argv, "--executor", "slurm"])
    return ExecutorPluginRegistry().get_plugin("slurm").get_settings(args)


def main(argv: list[str]) -> int:
    from snakemake.cli import main as snakemake_main

    jobs = _collect_jobs()
    try:
        # A dry run counts as local and caps each rule's threads at --cores; on SLURM nothing caps them.
        snakemake_main([*argv, "--dry-run", "--executor", "slurm", "--cores", "1000000", "--quiet", "all"])
    except SystemExit as stop:
        if stop.code:
            return int(stop.code)
    settings = slurm_settings(argv)
    array_rules = {name.strip() for name in str(settings.array_jobs or "").split(",") if name.strip()}
    if not jobs:
        print("Nothing to submit: every output is up to date, or only local rules are left.")
    for rule, rule_jobs in jobs.items():
        batched = rule in array_rules or "all" in array_rules
        size = len(rule_jobs) if batched else 1
        how = (
            f"{len(rule_jobs)} jobs, sent as arrays of those ready at once (at most {settings.array_limit} tasks a call)"
            if batched and len(rule_jobs) > 1
            else f"{len(rule_jobs)} job(s), each"
        )
        line = sbatch_line(rule_jobs[0], array_size=size, settings=settings)
        print(f"# {rule}: {how}")
        print(line)
        if batched and len(sets := resource_sets(rule_jobs)) > 1:
            differing = sorted({name for one in sets for name in one if one[name] != sets[0][name]})
            print(
                f"# warning: these jobs ask for {len(sets)} different sets of {', '.join(differing)}, and plugin 2.8.0"
                " puts the ready jobs of one rule into one array with the first job's resources"
                " (docs/cluster.md#arrays-of-jobs-that-differ)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
