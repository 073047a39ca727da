"""Before spending: the jobs per rule, the sbatch submissions and the GPU-hours per model of a config.

    python scripts/plan_grid.py --configfile config/beir.yaml --device h100

Jobs per rule come from Snakemake's own dry run (nothing is submitted or written). Submissions:
rules that run on the submit host (localrules) need none; the shard rules go out as job arrays,
one sbatch per dataset and system (or encoder) when all their shards are ready together; every
other job is one sbatch. GPU-hours: each reranker's pairs (judged queries x depth, an upper bound)
and each encoder's texts (documents and queries) divided by a measured throughput for that model,
device and precision from bench/throughput.csv (filled by the rerank and dense benchmarks), times
the GPUs a job asks for. A model without a measured throughput is reported as unknown, never guessed.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from beirflow.models.loading import is_hub_name
from beirflow.workflow.family import DiskRow, ModelWork
from beirflow.workflow.fetch import hub_sizes
from beirflow.workflow.paths import MODEL_RECORDS
from beirflow.workflow.plan import ConfigError, Plan, build
from beirflow.workflow.records import distinct_models, read_record

REPO = Path(__file__).resolve().parents[1]


def planned_jobs(configfile: Path, incremental: bool, directory: Path = REPO) -> dict[str, int]:
    """Jobs per rule, from the DAG Snakemake itself builds (its JSON form; nothing is run or written)."""
    command = [
        str(Path(sys.executable).with_name("snakemake")),
        "--d3dag",
        "-s",
        str(REPO / "Snakefile"),
        "--configfile",
        str(configfile),
        "--cores",
        "1",
    ]
    if not incremental:
        command.append("--forceall")  # the whole grid, as on a fresh cluster
    result = subprocess.run(command, capture_output=True, text=True, cwd=directory, check=False)
    if result.returncode != 0:
        raise SystemExit(f"snakemake --d3dag failed:\n{result.stderr[-3000:]}")
    dag = json.loads(result.stdout)
    rules = {node["id"]: node["value"]["rule"] for node in dag["nodes"]}
    inputs: dict[int, list[int]] = {job: [] for job in rules}
    for edge in dag["edges"]:  # u is an input of v
        inputs[edge["v"]].append(edge["u"])
    depth: dict[int, int] = {}

    def job_depth(job: int) -> int:  # the longest chain of inputs below a job
        if job not in depth:
            depth[job] = 1 + max((job_depth(source) for source in inputs[job]), default=0)
        return depth[job]

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * len(rules)))
    order = sorted(rules, key=lambda job: (job_depth(job), rules[job]))
    jobs: dict[str, int] = {}
    for job in order:  # rules in pipeline order: by the shallowest of their jobs
        jobs[rules[job]] = jobs.get(rules[job], 0) + 1
    return jobs


# data.smk defines one such rule per local dataset whose files are missing, run on the submit host.
LOCAL_DATASET_RULE = "local_dataset_"


def submissions(plan: Plan, jobs: dict[str, int]) -> dict[str, int]:
    """sbatch calls per rule: none for the submit host's rules, one per job array, else one per job."""
    local = {*plan.local_rules, "all"}
    arrays = plan.array_submissions()
    return {
        rule: 0 if rule in local or rule.startswith(LOCAL_DATASET_RULE) else arrays.get(rule, count)
        for rule, count in jobs.items()
    }


def read_throughputs(path: Path) -> dict[tuple[str, str, str, str], float]:
    with open(path, encoding="utf-8") as handle:
        return {
            (row["model"], row["kind"], row["device"], row["precision"]): float(row["per_second"])
            for row in csv.DictReader(handle)
        }


def model_work(plan: Plan) -> list[ModelWork]:
    """What each model must process over the grid, as each family's record counts it (a reranker's pairs,
    an encoder's texts)."""
    return [item for family in plan.families.values() if family.cost.gpu_work for item in family.cost.gpu_work(plan)]


def gpu_hours(
    work: Iterable[ModelWork], throughputs: dict[tuple[str, str, str, str], float], device: str
) -> list[tuple[ModelWork, float | None]]:
    rows = []
    for item in work:
        rate = throughputs.get((item.model, item.kind, device, item.precision))
        rows.append((item, None if rate is None else item.count / rate / 3600 * max(item.gpus, 1)))
    return rows


def model_downloads(plan: Plan, records: Path) -> list[tuple[str, str | None, int | None, str]]:
    """Each distinct model to fetch with the bytes it takes: (name, revision, bytes or None, where the figure is from)."""
    models = distinct_models(plan.model_sections)
    rows: dict[str, tuple[str, str | None, int | None, str]] = {}
    ask_hub = []
    for name, model in models.items():
        record = records / f"{name}.json"
        if record.is_file():
            rows[name] = (model.name, model.revision, read_record(record).total_bytes, "fetched")
        elif is_hub_name(model.name):
            ask_hub.append(name)
        else:
            rows[name] = (model.name, model.revision, None, "a folder or package, not downloaded")
    sizes = hub_sizes((models[name].name, models[name].revision) for name in ask_hub)
    for name in ask_hub:
        size = sizes[(models[name].name, models[name].revision)]
        rows[name] = (
            models[name].name,
            models[name].revision,
            size,
            "the hub's file list" if size is not None else "unknown: no record and the hub is unreachable",
        )
    return [rows[name] for name in models]


# Bytes on disk of a run file's line, measured on the embedded sample (results of `make run`): ids, rank,
# the score's shortest repr, the tag. The basis the plan states, not a promise.
RUN_LINE_BYTES = 52


def disk_plan(plan: Plan, records: Path) -> list[DiskRow]:
    """What the grid writes, stage by stage, with the basis of each figure: each family's own outputs as
    its record prices them, and the run files of every system."""
    rows: list[DiskRow] = []
    for family in plan.families.values():
        if family.cost.disk:
            rows += family.cost.disk(plan, records)
    run_lines = 0
    for name, family in plan.families.items():
        for system, entry in plan.sections[name].items():
            lines = sum(
                plan.datasets[dataset].query_count() * family.cost.run_hits(entry) for dataset in plan.datasets_of[system]
            )
            run_lines += lines * family.cost.run_copies
    basis = f"{run_lines:,} lines x {RUN_LINE_BYTES} bytes (the sample's average line)"
    rows.append(DiskRow("run files (merged and shard runs)", run_lines * RUN_LINE_BYTES, basis))
    return rows


def disk_totals(disk: Sequence[DiskRow]) -> dict[str, int]:
    """Bytes written in all; kept at the end (embeddings with keep_embeddings: false deleted once
    searched); and kept at the end were every dense system to set it false, or none."""
    known = [row for row in disk if row.size is not None]
    embeddings = sum(row.size or 0 for row in known if row.embeddings)
    written = sum(row.size or 0 for row in known)
    deleted = sum(row.size or 0 for row in known if row.deleted_after_search)
    return {
        "written": written,
        "kept": written - deleted,
        "kept, every embedding kept": written,
        "kept, every embedding deleted once searched": written - embeddings,
    }


def print_disk(disk: Sequence[DiskRow]) -> None:
    print("\nDisk the grid writes under results/ (the data and model caches aside):")
    for row in disk:
        shown = f"{row.size / 1e9:10.1f} GB" if row.size is not None else "unknown"
        print(f"  {row.stage:72} {shown:>13}  ({row.basis})")
    unknown = sum(row.size is None for row in disk)
    totals = disk_totals(disk)
    print(f"  {'total written':72} {totals['written'] / 1e9:10.1f} GB" + (f"  + {unknown} stage(s) unknown" if unknown else ""))
    print(f"  {'kept at the end (as configured)':72} {totals['kept'] / 1e9:10.1f} GB")
    print(f"  {'kept at the end, with every embedding kept':72} {totals['kept, every embedding kept'] / 1e9:10.1f} GB")
    print(
        f"  {'kept at the end, with keep_embeddings: false everywhere':72} {totals['kept, every embedding deleted once searched'] / 1e9:10.1f} GB"
    )


def job_memory(plan: Plan) -> list[tuple[str, str, int]]:
    """(rule, system, mem_mb) each GPU-rule job asks for on its first attempt (grown with each retry), as each
    family's record says."""
    return [row for family in plan.families.values() if family.cost.job_memory for row in family.cost.job_memory(plan)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", required=True, type=Path)
    parser.add_argument("--device", default="h100", help="a device column of the throughput table (h100, a100, cpu-2-cores, ...)")
    parser.add_argument("--throughput", type=Path, default=REPO / "bench" / "throughput.csv")
    parser.add_argument(
        "--incremental", action="store_true", help="only the jobs that would run now in this checkout, not the whole grid"
    )
    parser.add_argument(
        "--directory",
        type=Path,
        default=REPO,
        help="the workflow's working directory (where results/ and the models' fetch records are)",
    )
    args = parser.parse_args()
    config = yaml.safe_load(args.configfile.read_text(encoding="utf-8")) or {}
    try:
        # The models are checked where the workflow runs; this plan may be made on another machine.
        plan = build(config, check_models=False)
    except ConfigError as error:
        raise SystemExit(f"{args.configfile}: config key {error}") from None
    work = model_work(plan)
    jobs = planned_jobs(args.configfile.resolve(), args.incremental, args.directory.resolve())
    submitted = submissions(plan, jobs)
    print(f"{'rule':22} {'jobs':>8} {'sbatch':>8}")
    for rule, count in jobs.items():
        print(f"{rule:22} {count:8d} {submitted[rule]:8d}")
    print(f"{'total':22} {sum(jobs.values()):8d} {sum(submitted.values()):8d}")
    print(
        f"\nGPU-hours (device-hours where a job asks for no GPU) on {args.device} (throughputs from {args.throughput.relative_to(REPO) if args.throughput.is_relative_to(REPO) else args.throughput}):"
    )
    total, unknown = 0.0, 0
    for item, hours in gpu_hours(work, read_throughputs(args.throughput), args.device):
        what = f"{item.count:,} {item.unit}, {item.precision}, {item.gpus} GPU(s) a job"
        if hours is None:
            unknown += 1
            print(
                f"  {item.systems:28} unknown: no measured throughput for {item.model} ({item.kind}, {item.precision}) on {args.device}; {what}"
            )
        else:
            total += hours
            print(f"  {item.systems:28} {hours:10.2f}  ({what})")
    print(f"  {'total':28} {total:10.2f}" + (f"  + {unknown} model(s) unknown" if unknown else ""))
    downloads = model_downloads(plan, args.directory / MODEL_RECORDS)
    print(f"\nModel downloads (rule fetch_model, on the submit host, once per model and revision): {len(downloads)}")
    for name, revision, size, source in downloads:
        shown = f"{size / 1e9:8.2f} GB" if size is not None else f"{'unknown':>11}"
        print(f"  {name + ('@' + revision[:12] if revision else ''):72} {shown}  ({source})")
    known = [size for _, _, size, _ in downloads if size is not None]
    print(
        f"  {'total':72} {sum(known) / 1e9:8.2f} GB"
        + (f"  + {len(downloads) - len(known)} unknown" if len(known) < len(downloads) else "")
    )
    print_disk(disk_plan(plan, args.directory / MODEL_RECORDS))
    print("\nMemory each GPU-rule job asks for (mem_mb, first attempt; x2 and x3 on retries after a kill):")
    for rule, system, mem_mb in job_memory(plan):
        print(f"  {rule:18} {system:30} {mem_mb:8,d} MB")


if __name__ == "__main__":
    main()
