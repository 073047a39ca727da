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
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from beirflow.dense import DenseSettings, encoder_key
from beirflow.fetch import hub_sizes
from beirflow.models import is_hub_name
from beirflow.plan import enabled_systems, plan_datasets, system_datasets
from beirflow.records import RECORDS, distinct_models, read_record, record_name

REPO = Path(__file__).resolve().parents[1]
ARRAY_RULES = {"rerank_shard", "encode_documents"}


def planned_jobs(configfile: Path, incremental: bool, directory: Path = REPO) -> dict[str, int]:
    command = [
        str(Path(sys.executable).with_name("snakemake")),
        "-n",
        "-s",
        str(REPO / "Snakefile"),
        "--configfile",
        str(configfile),
        "--cores",
        "1",
        "--quiet",
        "rules",
    ]
    if not incremental:
        command.append("--forceall")  # the whole grid, as on a fresh cluster
    result = subprocess.run(command, capture_output=True, text=True, cwd=directory, check=False)
    if result.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{result.stderr[-3000:]}")
    output = result.stdout + result.stderr
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.MULTILINE) if rule != "total"}


def local_rules() -> set[str]:
    names: set[str] = set()
    for rules_file in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.findall(r"^localrules:\n((?:    \w+,?\n)+)", rules_file.read_text(encoding="utf-8"), flags=re.MULTILINE):
            names.update(re.findall(r"\w+", block))
    return names | {"all"}


# data.smk defines one such rule per local dataset whose files are missing, as a localrule.
LOCAL_DATASET_RULE = "local_dataset_"


def submissions(jobs: dict[str, int], arrays: dict[str, int]) -> dict[str, int]:
    local = local_rules()
    return {
        rule: 0
        if rule in local or rule.startswith(LOCAL_DATASET_RULE)
        else arrays.get(rule, count)
        if rule in ARRAY_RULES
        else count
        for rule, count in jobs.items()
    }


def read_throughputs(path: Path) -> dict[tuple[str, str, str, str], float]:
    with open(path, encoding="utf-8") as handle:
        return {
            (row["model"], row["kind"], row["device"], row["precision"]): float(row["per_second"])
            for row in csv.DictReader(handle)
        }


def encoder_groups(dense: dict[str, Any], runs_on: dict[str, list[str]]) -> dict[str, tuple[list[str], set[str]]]:
    """Encoder key -> (the dense systems sharing its embeddings, in config order; the datasets any of them runs on)."""
    groups: dict[str, tuple[list[str], set[str]]] = {}
    for name, entry in dense.items():
        names, encoded = groups.setdefault(encoder_key(DenseSettings.from_config(entry).encoder_identity()), ([], set()))
        names.append(name)
        encoded.update(runs_on[name])
    return groups


def model_work(config: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """What each model must process over the grid, and the array submissions of the shard rules."""
    datasets = plan_datasets(config.get("datasets") or {}, config.get("data_dir", "resources/beir"))
    families = {family: enabled_systems(config.get(family)) for family in ("bm25", "rerank", "dense", "fusion")}
    runs_on = system_datasets(families, datasets)  # 'enabled: false' and 'datasets:' as the workflow reads them
    work: list[dict[str, Any]] = []
    arrays = {"rerank_shard": 0, "encode_documents": 0}
    for name, entry in families["rerank"].items():
        pairs = sum(datasets[dataset].query_count() * int(entry.get("depth", 1000)) for dataset in runs_on[name])
        work.append(
            {
                "system": name,
                "model": entry["model"],
                "kind": entry["kind"],
                "precision": entry.get("precision", "bf16"),
                "count": pairs,
                "unit": "pairs",
                "gpus": entry.get("resources", {}).get("gpus", 1),
            }
        )
        arrays["rerank_shard"] += len(runs_on[name])
    encoders = []
    for names, encoded in encoder_groups(families["dense"], runs_on).values():
        entry = families["dense"][names[0]]
        texts = sum(datasets[dataset].document_count() + datasets[dataset].query_count() for dataset in encoded)
        encoders.append(
            {
                "system": ", ".join(names),
                "model": entry["model"],
                "kind": "dense",
                "precision": entry.get("precision", "bf16"),
                "count": texts,
                "unit": "documents",
                "gpus": entry.get("resources", {}).get("gpus", 1),
            }
        )
        arrays["encode_documents"] += len(encoded)
    return work + encoders, arrays


def gpu_hours(
    work: Iterable[dict[str, Any]], throughputs: dict[tuple[str, str, str, str], float], device: str
) -> list[tuple[dict[str, Any], float | None]]:
    rows = []
    for item in work:
        rate = throughputs.get((item["model"], item["kind"], device, item["precision"]))
        rows.append((item, None if rate is None else item["count"] / rate / 3600 * max(int(item["gpus"]), 1)))
    return rows


def model_downloads(config: dict[str, Any], records: Path) -> list[tuple[str, str | None, int | None, str]]:
    """Each distinct model to fetch with the bytes it takes: (name, revision, bytes or None, where the figure is from)."""
    models = distinct_models({family: enabled_systems(config.get(family)) for family in ("rerank", "dense")})
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


# Bytes on disk per unit, measured on the embedded sample (SciFact abstracts, results of `make run`):
# a run file's line (ids, rank, the score's shortest repr, the tag), and Lucene indexes and the
# document store against the corpus file's bytes. Passages shorter than abstracts index a little
# larger per byte; these are the basis the plan states, not a promise.
RUN_LINE_BYTES = 52
PER_CORPUS_BYTE = {"bm25_index (flat)": 1.40, "bm25_index (multifield)": 1.45, "document_store": 1.25}


def embedding_dimension(entry: dict[str, Any], records: Path) -> int | None:
    """From the fetched model's own config where it is fetched, else the entry's 'dimension'."""
    record_file = records / f"{record_name(entry['model'], entry.get('revision'))}.json"
    if record_file.is_file():
        folder = Path(read_record(record_file).folder)
        from beirflow.encoder import folder_defaults

        dense_layers = folder_defaults(folder, "plan").dense if folder.is_dir() else ()
        if dense_layers:
            return int(json.loads((dense_layers[-1].folder / "config.json").read_text(encoding="utf-8"))["out_features"])
        config_file = folder / "config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text(encoding="utf-8"))
            return int(config.get("hidden_size") or config.get("d_model") or config.get("n_embd"))
    dimension = entry.get("dimension")
    return int(dimension) if dimension else None


def disk_plan(config: dict[str, Any], records: Path) -> list[tuple[str, int | None, str]]:
    """(stage, bytes or None, basis) for everything the grid writes."""
    datasets = plan_datasets(config.get("datasets") or {}, config.get("data_dir", "resources/beir"))
    families = {family: enabled_systems(config.get(family)) for family in ("bm25", "rerank", "dense", "fusion")}
    runs_on = system_datasets(families, datasets)
    rows: list[tuple[str, int | None, str]] = []
    for names, encoded in encoder_groups(families["dense"], runs_on).values():
        entry = families["dense"][names[0]]
        dimension = embedding_dimension(entry, records)
        texts = sum(datasets[dataset].document_count() + datasets[dataset].query_count() for dataset in encoded)
        basis = (
            f"{texts:,} texts x {dimension} dimensions x 2 bytes (float16)"
            if dimension
            else f"{texts:,} texts; dimension unknown (declare 'dimension' or fetch the model)"
        )
        rows.append((f"embeddings {entry['model']}", texts * dimension * 2 if dimension else None, basis))
    run_lines = 0
    for family, systems in families.items():
        for name, entry in systems.items():
            hits = int(entry.get("depth", entry.get("hits", 1000)))
            lines = sum(datasets[dataset].query_count() * hits for dataset in runs_on[name])
            run_lines += lines * (2 if family == "rerank" else 1)  # a reranker's shard runs as much again
    rows.append(
        (
            "run files (merged and shard runs)",
            run_lines * RUN_LINE_BYTES,
            f"{run_lines:,} lines x {RUN_LINE_BYTES} bytes (the sample's average line)",
        )
    )
    fields = {entry.get("fields", "flat") for entry in families["bm25"].values()}
    needs_store = bool(families["rerank"])
    for stage, ratio in PER_CORPUS_BYTE.items():
        if (stage.startswith("bm25_index") and stage.split("(")[1].rstrip(")") not in fields) or (
            stage == "document_store" and not needs_store
        ):
            continue
        corpora = [datasets[dataset].files.corpus for dataset in datasets]
        present = [path for path in corpora if path.is_file()]
        if len(present) == len(corpora):
            size = sum(path.stat().st_size for path in present)
            rows.append((stage, int(size * ratio), f"{size / 1e9:.2f} GB of corpus files x {ratio} (measured on the sample)"))
        else:
            rows.append(
                (
                    stage,
                    None,
                    f"unknown: {len(corpora) - len(present)} of {len(corpora)} corpora not downloaded yet (x {ratio} of their bytes, measured on the sample)",
                )
            )
    return rows


def job_memory(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(rule, system, mem_mb) each GPU-rule job asks for on its first attempt (grown with each retry)."""
    families = {family: enabled_systems(config.get(family)) for family in ("rerank", "dense")}
    rows = [
        ("rerank_shard", name, int(entry.get("resources", {}).get("mem_mb", 16000))) for name, entry in families["rerank"].items()
    ]
    rows += [
        (rule, name, int(entry.get("resources", {}).get("mem_mb", 32000)))
        for name, entry in families["dense"].items()
        for rule in ("encode_documents", "dense_search")
    ]
    return rows


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
    work, arrays = model_work(config)
    jobs = planned_jobs(args.configfile.resolve(), args.incremental, args.directory.resolve())
    submitted = submissions(jobs, arrays)
    print(f"{'rule':22} {'jobs':>8} {'sbatch':>8}")
    for rule, count in jobs.items():
        print(f"{rule:22} {count:8d} {submitted[rule]:8d}")
    print(f"{'total':22} {sum(jobs.values()):8d} {sum(submitted.values()):8d}")
    print(
        f"\nGPU-hours (device-hours where a job asks for no GPU) on {args.device} (throughputs from {args.throughput.relative_to(REPO) if args.throughput.is_relative_to(REPO) else args.throughput}):"
    )
    total, unknown = 0.0, 0
    for item, hours in gpu_hours(work, read_throughputs(args.throughput), args.device):
        what = f"{item['count']:,} {item['unit']}, {item['precision']}, {item['gpus']} GPU(s) a job"
        if hours is None:
            unknown += 1
            print(
                f"  {item['system']:28} unknown: no measured throughput for {item['model']} ({item['kind']}, {item['precision']}) on {args.device}; {what}"
            )
        else:
            total += hours
            print(f"  {item['system']:28} {hours:10.2f}  ({what})")
    print(f"  {'total':28} {total:10.2f}" + (f"  + {unknown} model(s) unknown" if unknown else ""))
    downloads = model_downloads(config, args.directory / RECORDS)
    print(f"\nModel downloads (rule fetch_model, on the submit host, once per model and revision): {len(downloads)}")
    for name, revision, size, source in downloads:
        shown = f"{size / 1e9:8.2f} GB" if size is not None else f"{'unknown':>11}"
        print(f"  {name + ('@' + revision[:12] if revision else ''):72} {shown}  ({source})")
    known = [size for _, _, size, _ in downloads if size is not None]
    print(
        f"  {'total':72} {sum(known) / 1e9:8.2f} GB"
        + (f"  + {len(downloads) - len(known)} unknown" if len(known) < len(downloads) else "")
    )
    disk = disk_plan(config, args.directory / RECORDS)
    print("\nDisk the grid writes under results/ (the data and model caches aside):")
    for stage, size, basis in disk:
        print(f"  {stage:72} {f'{size / 1e9:10.1f} GB' if size is not None else 'unknown':>13}  ({basis})")
    written = [size for _, size, _ in disk if size is not None]
    print(
        f"  {'total':72} {sum(written) / 1e9:10.1f} GB"
        + (f"  + {len(disk) - len(written)} stage(s) unknown" if len(written) < len(disk) else "")
    )
    print("\nMemory each GPU-rule job asks for (mem_mb, first attempt; x2 and x3 on retries after a kill):")
    for rule, system, mem_mb in job_memory(config):
        print(f"  {rule:18} {system:30} {mem_mb:8,d} MB")


if __name__ == "__main__":
    main()
