"""Gather every GPU-rule job's elapsed time and GPU-seconds into cost.csv (rule cost).

Which jobs there are, and what each ran for, comes from the plan of the workflow's config (the
families' record and benchmark paths), built by the same function the workflow builds it with;
each job's own record says how many GPUs it ran on.
"""

import argparse
import json
from pathlib import Path

from beirflow.report.cost import JobRecord, job_costs, sacct_usage, to_csv
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.plan import RecordedJob, build


def benchmark_seconds(path: Path) -> float | None:
    if not path.is_file():
        return None
    header, values = path.read_text(encoding="utf-8").splitlines()[:2]
    return float(dict(zip(header.split("\t"), values.split("\t"), strict=False))["s"])


def job_record(job: RecordedJob) -> JobRecord:
    record = json.loads(Path(job.record).read_text(encoding="utf-8"))
    return JobRecord(
        job.dataset,
        job.systems,
        job.rule,
        job.job,
        record.get("slurm_job_id"),
        benchmark_seconds(Path(job.benchmark)),
        int(record.get("gpus", 0)),
    )


def gather(args: argparse.Namespace) -> None:
    plan = build(json.loads(args.config), check_models=False)
    records = [job_record(job) for job in plan.recorded_jobs()]
    costs = job_costs(records, sacct_usage(record.slurm_job_id for record in records if record.slurm_job_id))
    with atomic_write(args.output) as handle:
        handle.write(to_csv(costs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="the workflow's config as JSON (validated, defaults filled)")
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args()
    run_stage("cost", "all GPU-rule jobs", lambda: gather(args))


if __name__ == "__main__":
    main()
