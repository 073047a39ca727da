"""Fusion on the submit host at MS MARCO scale: beirflow's fuse job against ``python -m pyserini.fusion`` on the same files.

Runs of ``--queries`` x ``--hits`` (MS MARCO dev: 7,000 x 1,000) over ``--documents`` document ids, each
query's hits drawn at random, scores descending, written as beirflow writes runs. Each side is a fresh
process (imports included) timed wall-clock, its peak resident memory read from the kernel
(``wait4``'s ru_maxrss). The pairs compared: RRF (k = 60, top 1,000) against Pyserini's RRF, and
CombSUM of min-max normalised scores against Pyserini's ``normalize`` (the same sum); every other method
and normalisation beirflow offers is timed on the fewest runs against Pyserini's RRF on them,
its fastest method (Pyserini has none of them). The fused runs hold the same documents per
query as Pyserini's (its tie order differs where scores tie, and it prints scores to 6 decimals). Condorcet's
replay is compiled by numba on first use and cached: an untimed fuse of two small runs fills the cache first,
as the first fuse job on a checkout does. Targets: at least 2x Pyserini's speed, under 1 GB.

    python bench/fusion_throughput.py [--runs 2 5] [--queries 7000] [--hits 1000] [--documents 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from beirflow.runs.columns import HitColumns, write_hit_columns  # noqa: E402
from beirflow.workflow.integrity import adopt  # noqa: E402
from results import write_results  # noqa: E402

PYSERINI_FUSION = (
    "import sys, runpy; sys.path.insert(0, {scripts!r}); from beirflow.workflow.jvm import start_jvm; start_jvm(); "
    "sys.argv = ['pyserini.fusion'] + {argv!r}; runpy.run_module('pyserini.fusion', run_name='__main__')"
)
PAIRS = {"rrf": ("rrf", "min-max", "rrf"), "combsum min-max": ("combsum", "min-max", "normalize")}
Timed = dict[str, tuple[str, str | None, dict[str, object]]]  # label: method, norm, params
ALONE: Timed = {
    "combmnz min-max": ("combmnz", "min-max", {}),
    "wsum min-max": ("wsum", "min-max", {"weights": "ones"}),
    "condorcet min-max": ("condorcet", "min-max", {}),  # its sort's questions grow with the runs
}
# Every other method and normalisation the schema offers, timed on the fewest runs against Pyserini's RRF on
# them (its fastest method; it has none of these).
OTHERS: Timed = {
    **{f"{method} min-max": (method, "min-max", {}) for method in ("combanz", "combmax", "combmin", "combmed", "isr", "log_isr", "logn_isr", "bordafuse")},
    "combgmnz min-max": ("combgmnz", "min-max", {"gamma": 0.5}),
    "wmnz min-max": ("wmnz", "min-max", {"weights": "ones"}),
    "rbc min-max": ("rbc", "min-max", {"phi": 0.8}),
    **{f"combsum {norm or 'no norm'}": ("combsum", norm, {}) for norm in (None, "max", "sum", "zmuv", "rank", "borda")},
    **{f"{method} borda": (method, "borda", {}) for method in ("isr", "condorcet")},  # places after the borda norm
}  # fmt: skip


def write_random_run(path: Path, seed: int, queries: int, hits: int, documents: int) -> None:
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, queries, 500):
            block = range(start, min(start + 500, queries))
            docs = np.concatenate([rng.choice(documents, hits, replace=False) for _ in block])
            scores = np.concatenate([np.sort(rng.random(hits) * 20)[::-1] for _ in block])
            write_hit_columns(
                handle,
                HitColumns(
                    pa.array([f"q{query}" for query in block for _ in range(hits)], type=pa.string()),
                    pa.array([f"doc{doc}" for doc in docs.tolist()], type=pa.string()),
                    np.tile(np.arange(1, hits + 1), len(block)),
                    scores,
                ),
                tag=f"run{seed}",
            )
    adopt(path)  # the bench's run, recorded as no job wrote it


def measured(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident GB of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(" ".join(command) + "\n" + stderr[-3000:])
    return seconds, usage.ru_maxrss / 1e6


def beirflow_command(
    runs: list[Path], output: Path, method: str, norm: str | None, params: dict[str, object] | None = None
) -> list[str]:
    params = {name: [1.0] * len(runs) if value == "ones" else value for name, value in (params or {}).items()}
    settings = json.dumps({"method": method, "norm": norm, "params": params, "hits": 1000})
    return [sys.executable, str(REPO / "scripts" / "fuse_runs.py"), "--params", settings, "--output", str(output),
            "--provenance", str(output.with_suffix(".json")), "--dataset", "bench", "--system", "fused", "--", *map(str, runs)]  # fmt: skip


def pyserini_command(runs: list[Path], output: Path, method: str) -> list[str]:
    argv = [
        "--runs",
        *map(str, runs),
        "--output",
        str(output),
        "--method",
        method,
        "--rrf.k",
        "60",
        "--depth",
        "1000",
        "--k",
        "1000",
    ]
    return [sys.executable, "-c", PYSERINI_FUSION.format(scripts=str(REPO / "scripts"), argv=argv)]


def same_documents(ours: Path, theirs: Path) -> bool:
    """Whether both runs hold the same documents per query, decided in a process of its own: this one stays small,
    since each measured process is forked from it and the kernel's peak counts what a fork starts with."""
    code = (
        "import sys\n"
        "def documents(path):\n"
        "    found = {}\n"
        "    for line in open(path, encoding='utf-8'):\n"
        "        query, _, doc, *_ = line.split()\n"
        "        found.setdefault(query, set()).add(doc)\n"
        "    return found\n"
        "sys.exit(0 if documents(sys.argv[1]) == documents(sys.argv[2]) else 1)\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(ours), str(theirs)], check=False).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--queries", type=int, default=7000)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the runs here and keep them; runs already there are used again")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="beirflow-fusion-bench-") as scratch:
        root = Path(scratch)
        folder = args.keep or root
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for seed in range(max(args.runs)):
            files.append(folder / f"run{seed}-{args.queries}x{args.hits}-{args.documents}.trec")
            if not files[-1].is_file():
                write_random_run(files[-1], seed, args.queries, args.hits, args.documents)
        shape = f"{args.queries:,} x {args.hits:,}"
        # numba compiles Condorcet's replay on its first use and caches it beside the source, as a first fuse job
        # would: a fuse of two small runs fills the cache, untimed.
        small = [root / f"small{seed}.trec" for seed in range(2)]
        for seed, path in enumerate(small):
            write_random_run(path, seed, 20, 100, 1000)
        for norm in ("min-max", "borda"):
            measured(beirflow_command(small, root / "small-fused.trec", "condorcet", norm))
        for count in args.runs:
            runs = files[:count]
            for label, (method, norm, theirs) in PAIRS.items():
                ours_seconds, ours_gb = measured(beirflow_command(runs, root / "ours.trec", method, norm))
                their_seconds, their_gb = measured(pyserini_command(runs, root / "theirs.trec", theirs))
                same = same_documents(root / "ours.trec", root / "theirs.trec")
                rows.append({
                    "fusing": f"{count} runs of {shape}", "method": label, "beirflow": f"{ours_seconds:.1f} s, {ours_gb:.2f} GB",
                    "pyserini.fusion": f"{their_seconds:.1f} s, {their_gb:.2f} GB ({theirs})", "speed ratio": f"{their_seconds / ours_seconds:.2f}x",
                    "same documents per query": "yes" if same else "no",
                })  # fmt: skip
                print(rows[-1], flush=True)
            others = {**ALONE, **(OTHERS if count == min(args.runs) else {})}
            their_rrf = next(
                float(row["pyserini.fusion"].split()[0])
                for row in rows
                if row["fusing"].startswith(f"{count} ") and row["method"] == "rrf"
            )
            for label, (method, other_norm, params) in others.items():
                ours_seconds, ours_gb = measured(beirflow_command(runs, root / "ours.trec", method, other_norm, params))
                rows.append({
                    "fusing": f"{count} runs of {shape}", "method": label, "beirflow": f"{ours_seconds:.1f} s, {ours_gb:.2f} GB",
                    "pyserini.fusion": "(no such method; its rrf above)", "speed ratio": f"{their_rrf / ours_seconds:.2f}x (vs its rrf)", "same documents per query": "",
                })  # fmt: skip
                print(rows[-1], flush=True)
    write_results("fusion_throughput", rows)


if __name__ == "__main__":
    main()
