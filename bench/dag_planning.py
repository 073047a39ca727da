"""Planning cost of beirflow's DAG against a bare Snakefile of the same shape.

Shape: 18 datasets x 12 systems; per dataset a first stage (download, prepare, query shards),
per dataset and system 20 shard jobs, a merge and an evaluation; one leaderboard: about 4,800
jobs. beirflow's side is the real workflow (config validation, the plan from known BEIR counts,
input functions, wildcard constraints) with a planning-only sharded family (bench/dag/). The
bare side is a generated Snakefile with literal paths and no Python. Both are timed for
`snakemake -n` on an empty directory and on a directory where every output exists (a no-op
rerun, which adds the file-system checks). Target: beirflow <= 2x bare.

Then the paper's grid as users plan it, `snakemake -n --configfile config/paper.yaml` in an empty
directory (about 5,100 jobs, no data present), against the issue's budget. Target: <= 30 s.

    python bench/dag_planning.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from results import write_results

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
DATASETS = [
    "msmarco",
    "trec-covid",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "arguana",
    "webis-touche2020",
    "quora",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
    "cqadupstack-android",
    "cqadupstack-english",
    "cqadupstack-gaming",
    "cqadupstack-gis",
]
SYSTEMS = [f"sharded-{index:02d}" for index in range(12)]
SHARDS = [f"{index:04d}" for index in range(20)]
DIRECTORY_RULES = {"download_beir", "shard_queries", "first_stage"}


SHARDED_RECORD = """\
from beirflow.workflow.family import Family, FamilyReport, FamilyRule

FAMILY = Family(
    name="sharded",
    position=50,
    run_rule="sharded_merge",
    rules=(FamilyRule("sharded_shard", shards="queries", array=True), FamilyRule("sharded_merge")),
    report=FamilyReport(noun="sharded", role="reranker"),
)
"""


def beirflow_workdir(root: Path) -> tuple[Path, Path]:
    """A copy of the workflow with the planning-only family added the way a new family is: its schema section, its
    rules and its record."""
    shutil.copytree(REPO / "workflow", root / "workflow")
    shutil.copytree(REPO / "scripts", root / "scripts", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / "scripts" / "beirflow" / "workflow" / "families" / "sharded.py").write_text(SHARDED_RECORD, encoding="utf-8")
    schema_file = root / "workflow" / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_file.read_text(encoding="utf-8"))
    schema["properties"]["sharded"] = {
        "type": "object",
        "default": {},
        "additionalProperties": {"type": "object"},
    }
    schema_file.write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")
    shutil.copy(REPO / "bench" / "dag" / "sharded_family.smk", root / "workflow" / "rules" / "sharded.smk")
    snakefile = root / "Snakefile"
    includes = ["common", "data", "bm25", "sharded", "evaluate", "report"]
    lines = [f'include: "workflow/rules/{name}.smk"' for name in includes]
    lines += ["rule all:", "    default_target: True", "    input: rules.leaderboard.output"]
    snakefile.write_text("\n".join(lines) + "\n")
    config = {
        "data_dir": "resources/beir",
        "datasets": dict.fromkeys(DATASETS),
        "bm25": {},
        "sharded": {system: {} for system in SYSTEMS},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return snakefile, root / "config.yaml"


def bare_workdir(root: Path) -> Path:
    """The same jobs with literal paths: one rule per stage, no input functions, no validation."""
    snakefile = root / "Snakefile"
    datasets, systems, shards = (repr(values) for values in (DATASETS, SYSTEMS, SHARDS))
    snakefile.write_text(f"""
DATASETS = {datasets}
SYSTEMS = {systems}
SHARDS = {shards}

rule all:
    input: "results/leaderboard.csv"

rule first_stage:
    output: directory("results/{{dataset}}/shards/queries")
    shell: "mkdir -p {{output}}"

rule shard:
    input: "results/{{dataset}}/shards/queries"
    output: "results/{{dataset}}/{{system}}/shards/{{shard}}.trec"
    shell: "touch {{output}}"

rule merge:
    input: expand("results/{{{{dataset}}}}/{{{{system}}}}/shards/{{shard}}.trec", shard=SHARDS)
    output: "results/{{dataset}}/{{system}}/run.trec"
    shell: "cat {{input}} > {{output}}"

rule evaluate:
    input: expand("results/{{{{dataset}}}}/{{system}}/run.trec", system=SYSTEMS)
    output: "results/{{dataset}}/metrics.json"
    shell: "touch {{output}}"

rule leaderboard:
    input: expand("results/{{dataset}}/metrics.json", dataset=DATASETS)
    output: "results/leaderboard.csv"
    shell: "touch {{output}}"
""")
    return snakefile


def dry_run(snakefile: Path, workdir: Path, config: Path | None, quiet: bool = True) -> tuple[float, str]:
    command = [SNAKEMAKE, "-n", "-s", str(snakefile), "--directory", str(workdir), "--cores", "1"]
    if config is not None:
        command += ["--configfile", str(config)]
    if quiet:
        command += ["--quiet", "all"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:] + result.stderr[-3000:])
    return elapsed, result.stdout + result.stderr


def job_count(output: str) -> int:
    found = re.search(r"^total\s+(\d+)", output, flags=re.MULTILINE)
    if found is None:
        raise SystemExit(f"no job total in snakemake's output:\n{output[-2000:]}")
    return int(found.group(1))


def materialise_outputs(output: str, workdir: Path) -> int:
    """Create every planned output (directories for directory rules), all with one mtime."""
    created = 0
    stamp = time.time() - 3600
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        rule = re.match(r"(?:local)?rule (\w+):", block.strip())
        outputs = re.search(r"^\s+output: (.+)$", block, flags=re.MULTILINE)
        if not rule or not outputs:
            continue
        for name in outputs.group(1).split(", "):
            path = workdir / name.strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            if rule.group(1) in DIRECTORY_RULES:
                path.mkdir(exist_ok=True)
            else:
                path.touch()
            created += 1
    for path in workdir.rglob("*"):
        os.utime(path, (stamp, stamp))
    return created


def best_of(repeat: int, snakefile: Path, workdir: Path, config: Path | None) -> float:
    return min(dry_run(snakefile, workdir, config)[0] for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="beirflow-dag-") as scratch:
        root = Path(scratch)
        (root / "beirflow").mkdir()
        (root / "bare").mkdir()
        beirflow_snakefile, beirflow_config = beirflow_workdir(root / "beirflow")
        bare_snakefile = bare_workdir(root / "bare")

        sides = {
            "beirflow": (beirflow_snakefile, root / "beirflow", beirflow_config),
            "bare": (bare_snakefile, root / "bare", None),
        }
        plans = {
            name: dry_run(snakefile, workdir, config, quiet=False)[1] for name, (snakefile, workdir, config) in sides.items()
        }
        for name, output in plans.items():
            print(f"{name}: {job_count(output)} jobs")

        fresh = {name: best_of(args.repeat, *side) for name, side in sides.items()}
        for name, output in plans.items():
            materialise_outputs(output, sides[name][1])
        for name, side in sides.items():
            _, output = dry_run(*side, quiet=False)
            if "Nothing to be done" not in output:
                raise RuntimeError(f"{name}: the no-op rerun still plans jobs:\n{output[-2000:]}")
        noop = {name: best_of(args.repeat, *side) for name, side in sides.items()}

    print(f"{'':18}{'beirflow':>10}{'bare':>10}{'ratio':>8}  (best of {args.repeat}, seconds; target ratio <= 2.0)")
    for label, timings in (("snakemake -n", fresh), ("no-op rerun -n", noop)):
        print(f"{label:18}{timings['beirflow']:10.2f}{timings['bare']:10.2f}{timings['beirflow'] / timings['bare']:8.2f}")
    paper = paper_plan(args.repeat)
    rows = [
        {"what": label, "beirflow s": f"{timings['beirflow']:.2f}", "bare Snakefile s": f"{timings['bare']:.2f}",
         "ratio": f"{timings['beirflow'] / timings['bare']:.2f}", "target": "<= 2"}
        for label, timings in (("snakemake -n, the synthetic grid", fresh), ("no-op rerun -n", noop))
    ]  # fmt: skip
    rows.append({"what": "snakemake -n, config/paper.yaml", "beirflow s": f"{paper:.2f}", "bare Snakefile s": "",
                 "ratio": f"{paper / 30:.2f} of the budget", "target": "<= 30 s"})  # fmt: skip
    write_results("dag_planning", rows)
    print(
        f"config/paper.yaml: {paper:.2f} s for `snakemake -n` on an empty directory (best of {args.repeat}); budget 30 s, ratio {paper / 30:.2f}"
    )


def paper_plan(repeat: int) -> float:
    with tempfile.TemporaryDirectory(prefix="beirflow-paper-") as scratch:
        return best_of(repeat, REPO / "Snakefile", Path(scratch), REPO / "config" / "paper.yaml")


if __name__ == "__main__":
    main()
