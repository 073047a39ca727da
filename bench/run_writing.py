"""Writing a run of millions of lines against the disk: beirflow's writer, Python's line at a time, the bytes alone.

A run of ``--queries`` x ``--hits`` (MS MARCO dev: 7,000 x 1,000) over ``--documents`` document ids, held as
the columns the search, merge and fuse jobs hold, for each kind of score a run holds: BM25's (float32 scores
widened to doubles), a dense search's (float32 inner products) and RRF's (sums of reciprocal ranks, full
doubles). Timed, each in a process of its own and best of ``--repeat``, each ending in ``fsync``:

- beirflow: ``LinesWriter``, as the jobs write runs (pieces formatted on threads), with its compiled writer
  (``beirflow/runs/run_lines.c``: Ryu's digits in repr's layout) and again without a C compiler, where Arrow's
  cast and join format the lines;
- Python: ``write_query_hits``'s line, an f-string a hit with ``repr`` of its score (the bytes the runs must be),
  on the hits already in run order;
- the disk: the same bytes, already in memory, written and fsynced: what "at the speed of the disk" means here.

Every file must be the same bytes. ``--baseline-scripts`` times another checkout's writer in the same run
(``git worktree add /tmp/before <commit>``). The target: beirflow's writer at the disk's speed (ratio about 1.0),
where Python's formatting is far below it. On few cores the formatting threads bound it (docs/performance.md).

    python bench/run_writing.py [--queries 7000] [--hits 1000] [--documents 1000000] [--repeat 3]
                                [--baseline-scripts /tmp/before/scripts]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from results import write_results

REPO = Path(__file__).resolve().parents[1]
SCORE_KINDS = ("bm25", "dense", "rrf")


def columns_file(folder: Path, kind: str, queries: int, hits: int, documents: int) -> Path:
    """The run's columns (query ids, document ids, ranks, scores in run order) as an Arrow file."""
    import pyarrow as pa
    import pyarrow.feather as feather

    rng = np.random.default_rng(SCORE_KINDS.index(kind))
    rows = queries * hits
    if kind == "bm25":
        scores = (rng.gamma(4.0, 3.0, rows)).astype(np.float32).astype(np.float64)
    elif kind == "dense":
        scores = rng.uniform(-0.2, 0.9, rows).astype(np.float32).astype(np.float64)
    else:
        scores = 1 / (60 + rng.integers(1, 1001, rows)) + 1 / (60 + rng.integers(1, 1001, rows))
    scores = -np.sort(-scores.reshape(queries, hits), axis=1).ravel()
    table = pa.table(
        {
            "query": pa.array(np.repeat(np.arange(1_000_000, 1_000_000 + queries), hits).astype(str)),
            "doc": pa.array(rng.integers(0, documents, rows).astype(str)),
            "rank": np.tile(np.arange(1, hits + 1), queries),
            "score": scores,
        }
    )
    path = folder / f"{kind}.arrow"
    feather.write_feather(table, path, compression="uncompressed")
    return path


def child(how: str, scripts: Path, columns: Path, output: Path, repeat: int) -> None:
    """Writes the run ``repeat`` times the way ``how`` says and prints the best time as JSON."""
    sys.path.insert(0, str(scripts))
    import pyarrow.feather as feather

    table = feather.read_table(columns)
    query_ids, doc_ids = table.column("query").combine_chunks(), table.column("doc").combine_chunks()
    ranks, scores = table.column("rank").to_numpy(), table.column("score").to_numpy()
    if how == "beirflow":
        from beirflow.runs.columns import HitColumns, LinesWriter

        try:
            from beirflow.runs.compiled import library
        except ImportError:  # a baseline checkout from before the compiled writer
            pass
        else:
            library()  # built, where it is not yet, before the clock
    best = float("inf")
    for _ in range(repeat):
        output.unlink(missing_ok=True)
        started = time.perf_counter()
        with open(output, "w", encoding="utf-8") as handle:
            if how == "beirflow":
                with LinesWriter(handle, "run") as lines:  # in batches, as the fuse job hands them over
                    for start in range(0, len(ranks), 500_000):
                        part = slice(start, start + 500_000)
                        lines.write(HitColumns(query_ids[part], doc_ids[part], ranks[part], scores[part]))
            else:
                from beirflow.runs.trec import format_score

                ids, documents = query_ids.to_pylist(), doc_ids.to_pylist()
                started = time.perf_counter()  # Python's lists are the line writer's input, not its work
                handle.writelines(
                    f"{query_id} Q0 {doc_id} {rank} {format_score(score)} run\n"
                    for query_id, doc_id, rank, score in zip(ids, documents, ranks.tolist(), scores.tolist(), strict=True)
                )
            handle.flush()
            os.fsync(handle.fileno())
        best = min(best, time.perf_counter() - started)
    print(json.dumps({"seconds": best}))


def disk_seconds(text: bytes, output: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        output.unlink(missing_ok=True)
        started = time.perf_counter()
        with open(output, "wb") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        best = min(best, time.perf_counter() - started)
    return best


def timed_child(how: str, scripts: Path, columns: Path, output: Path, repeat: int, compiler: bool = True) -> float:
    """The child's best seconds; without ``compiler``, run where no C compiler is found (``CC`` empty)."""
    command = [sys.executable, __file__, "--child", how, "--scripts", str(scripts), "--columns", str(columns)]
    command += ["--output", str(output), "--repeat", str(repeat)]
    environment = os.environ if compiler else {**os.environ, "CC": ""}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if result.returncode != 0:
        raise RuntimeError(" ".join(command) + "\n" + result.stderr[-3000:])
    return float(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=7000)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-scripts", type=Path)
    parser.add_argument("--child", choices=["beirflow", "python"])
    parser.add_argument("--scripts", type=Path, default=REPO / "scripts")
    parser.add_argument("--columns", type=Path)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.scripts, args.columns, args.output, args.repeat)
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="beirflow-run-writing-", dir=os.environ.get("BENCH_TMP")) as folder:
        work = Path(folder)
        for kind in SCORE_KINDS:
            columns = columns_file(work, kind, args.queries, args.hits, args.documents)
            python_file, ours_file, disk_file = work / "python.trec", work / "beirflow.trec", work / "disk.trec"
            python = timed_child("python", REPO / "scripts", columns, python_file, 1)
            sides = []
            for code, compiler in (("compiled", True), ("Arrow (no C compiler)", False)):
                sides.append((code, timed_child("beirflow", REPO / "scripts", columns, ours_file, args.repeat, compiler)))
                if not filecmp.cmp(python_file, ours_file, shallow=False):
                    raise SystemExit(f"{kind}: beirflow's run ({code}) is not the line writer's bytes")
            text = python_file.read_bytes()
            disk = disk_seconds(text, disk_file, args.repeat)
            size = len(text)
            if args.baseline_scripts:
                before_file = work / "before.trec"
                sides.append(("baseline", timed_child("beirflow", args.baseline_scripts, columns, before_file, args.repeat)))
                if not filecmp.cmp(python_file, before_file, shallow=False):
                    raise SystemExit(f"{kind}: the baseline's run is not the line writer's bytes")
            for code, seconds in sides:
                row = {
                    "scores": kind,
                    "code": code,
                    "lines": f"{args.queries * args.hits:,}",
                    "bytes": f"{size / 1e6:,.0f} MB",
                    "beirflow": f"{seconds:.2f} s, {size / seconds / 1e9:.2f} GB/s",
                    "the bytes alone (disk)": f"{disk:.2f} s, {size / disk / 1e9:.2f} GB/s",
                    "vs the disk": f"{disk / seconds:.2f}x",
                    "Python line at a time": f"{python:.2f} s, {size / python / 1e9:.2f} GB/s",
                    "vs Python": f"{python / seconds:.1f}x",
                }
                rows.append(row)
                print(" | ".join(str(value) for value in row.values()), flush=True)
            for path in work.glob("*.trec"):
                path.unlink()
    print(f"wrote {write_results('run_writing', rows)}")


if __name__ == "__main__":
    main()
