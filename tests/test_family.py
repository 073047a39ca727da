"""Adding a family of systems is its own files: a schema section (its config keys), one rule file, its
record (beirflow/workflow/families/<name>.py) and its stage program. A toy family ('reverse': a first stage's top
hits in reverse order, sharded over the queries like a reranker) is added to a copy of the checkout, and
shows up in the plan, the SLURM submissions, the cost table, the leaderboard and the report, with nothing
else edited."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from beirflow.workflow import paths
from conftest import REPO, Workflow, fork

pytestmark = pytest.mark.workflow

SCHEMA_SECTION = {
    "description": "Toy family: a first stage's top 'depth' hits per query in reverse order.",
    "type": "object",
    "default": {},
    "propertyNames": {"$ref": "#/$defs/name"},
    "additionalProperties": {
        "type": "object",
        "additionalProperties": False,
        "required": ["first_stage"],
        "properties": {
            "first_stage": {"$ref": "#/$defs/name"},
            "depth": {"type": "integer", "minimum": 1, "default": 10},
            "enabled": {"$ref": "#/$defs/enabled"},
            "datasets": {"$ref": "#/$defs/system_datasets"},
            "report": {"$ref": "#/$defs/system_report"},
        },
    },
}

RULE_FILE = """\
rule reverse_shard:
    input:
        run=INPUTS.system_runs("first_stage"),
        queries="results/{dataset}/shards/queries",
    output:
        run="results/{dataset}/reverse/{system}/shards/{shard}.trec",
        record="results/{dataset}/reverse/{system}/shards/{shard}.json",
    log:
        "logs/reverse_shard/{dataset}/{system}/{shard}.log",
    benchmark:
        "benchmarks/reverse_shard/{dataset}/{system}/{shard}.tsv"
    params:
        depth=lambda wildcards: PLAN.entry(wildcards.system)["depth"],
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/reverse_family.py" --run {input.run} --queries {input.queries}/{wildcards.shard}.jsonl'
        " --depth {params.depth} --tag {wildcards.system} --output {output.run} --record {output.record} > {log} 2>&1"


rule reverse_merge:
    input:
        runs=lambda wildcards: expand(
            "results/{dataset}/reverse/{system}/shards/{shard}.trec",
            dataset=wildcards.dataset, system=wildcards.system, shard=PLAN.query_shards(wildcards.dataset),
        ),
    output:
        run="results/{dataset}/reverse/{system}/run.trec",
        provenance="results/{dataset}/reverse/{system}/provenance.json",
    log:
        "logs/reverse_merge/{dataset}/{system}.log",
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/merge_runs.py" --dataset {wildcards.dataset} --family reverse'
        " --tag {wildcards.system} --output {output.run} --provenance {output.provenance} -- {input.runs} > {log} 2>&1"
"""

RECORD = """\
from beirflow.workflow import paths
from beirflow.workflow.family import Family, FamilyReport, FamilyRule

FAMILY = Family(
    name="reverse",
    position=50,
    run_rule="reverse_merge",
    rules=(
        FamilyRule(
            "reverse_shard",
            shards="queries",
            array=True,
            record=lambda dataset, system, shard: f"results/{dataset}/reverse/{system}/shards/{shard}.json",
            benchmark=lambda dataset, system, shard: paths.benchmark("reverse_shard", dataset, system, shard),
        ),
        FamilyRule("reverse_merge", local=True),
    ),
    report=FamilyReport(noun="reversed run", role="reranker"),
    reads=("first_stage",),
)
"""

MODULE = """\
import argparse
import json
from pathlib import Path

from beirflow.workflow.atomic import atomic_write
from beirflow.data.beir import iter_jsonl
from beirflow.runs.trec import read_run, run_order, write_run


def reverse(run, queries, depth):
    reversed_run = {}
    for query_id in queries:
        top = sorted(run.get(query_id, {}).items(), key=run_order)[:depth]
        reversed_run[query_id] = [(doc_id, float(rank)) for rank, (doc_id, _) in enumerate(top, start=1)]
    return reversed_run


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for option in ("--run", "--queries", "--tag", "--output", "--record"):
        parser.add_argument(option, required=True)
    parser.add_argument("--depth", type=int, required=True)
    args = parser.parse_args()
    queries = [str(record["_id"]) for _, record in iter_jsonl(Path(args.queries))]
    with atomic_write(Path(args.output)) as handle:
        write_run(handle, reverse(read_run(Path(args.run)), queries, args.depth), tag=args.tag)
    with atomic_write(Path(args.record)) as handle:
        handle.write(json.dumps({"queries": len(queries), "gpus": 0}))
"""


def add_toy_family(checkout: Path) -> None:
    """The four files of a new family, in a copy of the checkout."""
    schema_file = checkout / "workflow" / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_file.read_text(encoding="utf-8"))
    schema["properties"]["reverse"] = SCHEMA_SECTION
    schema_file.write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")
    (checkout / "workflow" / "rules" / "reverse.smk").write_text(RULE_FILE, encoding="utf-8")
    (checkout / "scripts" / "beirflow" / "workflow" / "families" / "reverse.py").write_text(RECORD, encoding="utf-8")
    (checkout / "scripts" / "reverse_family.py").write_text(MODULE, encoding="utf-8")


def copy_checkout(destination: Path) -> Path:
    ignored = shutil.ignore_patterns(
        ".venv", ".git", "results", "logs", "benchmarks", ".snakemake", "__pycache__", ".pytest_cache", "*.egg-info"
    )
    return Path(shutil.copytree(REPO, destination, ignore=ignored))


@pytest.fixture
def toy_checkout(tmp_path: Path) -> Path:
    checkout = copy_checkout(tmp_path / "checkout")
    add_toy_family(checkout)
    return checkout


PLANNED = """\
import json, sys
from beirflow.workflow.plan import build

plan = build(json.loads(sys.argv[1]))
recorded = [job.job for job in plan.recorded_jobs() if job.rule == "reverse_shard"]
print(json.dumps({
    "family": plan.systems["reversed-bm25"], "local": list(plan.local_rules), "array": list(plan.array_rules),
    "recorded": recorded, "shards": plan.query_shards("scifact-sample"), "arrays": plan.array_submissions()["reverse_shard"],
    "chain": plan.stack_chain("reversed-bm25"),
}))
"""


def test_a_toy_family_is_planned_from_its_record(toy_checkout: Path, done: Workflow) -> None:
    config = {**done.config, "reverse": {"reversed-bm25": {"first_stage": "bm25-flat", "depth": 5}}}
    environment = {**os.environ, "PYTHONPATH": str(toy_checkout / "scripts")}
    planned = subprocess.run(
        [sys.executable, "-c", PLANNED, json.dumps(config)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=toy_checkout,
        check=True,
    )
    plan = json.loads(planned.stdout)
    assert plan["family"] == "reverse" and plan["chain"] == ["bm25-flat", "reversed-bm25"]
    assert "reverse_merge" in plan["local"] and "reverse_shard" in plan["array"]
    assert plan["recorded"] == [f"reversed-bm25/{shard}" for shard in plan["shards"]]
    assert plan["arrays"] == 1


def test_a_toy_family_runs_into_the_cost_table_the_leaderboard_and_the_report(
    toy_checkout: Path, done: Workflow, tmp_path: Path
) -> None:
    workflow = fork(done, tmp_path / "work")
    workflow.snakefile = toy_checkout / "Snakefile"
    # The reranker is left out: shard sizes decide its shards too, and rerunning it would prove nothing here.
    config = {**workflow.config, "rerank": {}, "reverse": {"reversed-bm25": {"first_stage": "bm25-flat", "depth": 5}}}
    config["shards"] = {"queries_per_shard": 20}  # the 50 sample queries in 3 shards
    variant = workflow.variant(config)
    variant.snakefile = workflow.snakefile
    planned = variant.planned_jobs()
    # Only the new family's jobs, its query shards and what gathers results are new.
    assert planned["reverse_shard"] == 3 and planned["reverse_merge"] == 1, planned
    assert set(planned) == {
        "shard_queries",
        "reverse_shard",
        "reverse_merge",
        "evaluate",
        "cost",
        "leaderboard",
        "report",
        "all",
    }, planned

    grid = subprocess.run(
        [sys.executable, str(toy_checkout / "scripts" / "plan_grid.py"), "--configfile", str(variant.config_path),
         "--directory", str(workflow.root), "--incremental"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in grid.stdout.splitlines()[1:] if line and not line.startswith(" ")}
    assert rows["reverse_shard"][:2] == ["3", "1"], grid.stdout  # 3 jobs in one job array
    assert rows["reverse_merge"][:2] == ["1", "0"], grid.stdout  # on the submit host

    variant.run()
    bm25 = _read_run(workflow.path(paths.run("bm25", "scifact-sample", "bm25-flat")))
    reversed_run = _read_run(workflow.path(paths.run("reverse", "scifact-sample", "reversed-bm25")))
    for query_id, hits in bm25.items():
        top = [doc for doc, _ in sorted(hits.items(), key=lambda hit: (-hit[1], hit[0]))[:5]]
        assert [doc for doc, _ in sorted(reversed_run[query_id].items(), key=lambda hit: -hit[1])] == top[::-1]

    with open(workflow.path(paths.cost()), encoding="utf-8") as handle:
        cost = [row for row in csv.DictReader(handle) if row["rule"] == "reverse_shard"]
    assert len(cost) == 3 and all(row["system"] == "reversed-bm25" for row in cost), cost
    assert "reversed-bm25" in workflow.path(paths.leaderboard("md")).read_text(encoding="utf-8")
    summary = json.loads(workflow.path(paths.report("report.json")).read_text(encoding="utf-8"))
    assert "reversed-bm25" in json.dumps(summary)
    assert "reversed-bm25" in workflow.path(paths.report("report.html")).read_text(encoding="utf-8")


def _read_run(path: Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        query_id, _, doc_id, _, score, _ = line.split()
        run.setdefault(query_id, {})[doc_id] = float(score)
    return run


# The modules that serve every family: the planner, the cost plan and table, the leaderboard and the report.
GENERIC_MODULES = [
    *(f"scripts/beirflow/workflow/{name}.py" for name in ("plan", "family", "systems", "config_checks", "dataset_plan")),
    *(
        f"scripts/beirflow/report/{name}.py"
        for name in ("results", "findings", "figures", "assemble", "pages", "leaderboard", "cost")
    ),
    *(f"scripts/{name}.py" for name in ("plan_grid", "gather_cost", "build_leaderboard", "build_report", "sbatch_preview")),
    "Snakefile",
]


def test_the_generic_modules_name_no_family() -> None:
    """What a family is, they read from its record; a family named in one of them would be a place a new
    family has to edit. Every family record's name is looked for, quoted or as a module."""
    from beirflow.workflow.family import families

    names = "|".join(families())
    named = re.compile(rf"""["']({names})["']|\\b(families|beirflow)\\.({names})\\b|config\\[["']({names})["']\\]""")
    found = [
        f"{module}:{number}: {line.strip()}"
        for module in GENERIC_MODULES
        for number, line in enumerate((REPO / module).read_text(encoding="utf-8").splitlines(), start=1)
        if named.search(line)
    ]
    assert len(families()) >= 5 and not found, found
