"""Reranking throughput: beirflow against the libraries IR researchers use, on the same pairs and device.

Pairs: real SciFact test queries and their BM25 top-100 abstracts (``../shared/data/scifact``,
title and text joined by a space), searched with beirflow's own BM25. Models have real sizes and
random weights (no monoT5 or cross-encoder weights can be had here; speed does not depend on them):

* monoT5: a t5-base-sized T5 (220M) with a SentencePiece-style tokenizer trained on SciFact.
  Peers: ``rerankers``' T5 ranker and ``pyterrier-t5``'s ``MonoT5ReRanker``.
* cross-encoder: a MiniLM-L6-sized BERT (22M, all-MiniLM-L6-v2's encoder and WordPiece vocabulary,
  a random one-logit head). Peer: sentence-transformers' ``CrossEncoder.predict``.

Every peer runs twice: at its defaults (what a user gets) and at beirflow's precision and batch
size (the implementation alone). beirflow runs at its defaults (bf16 where the device supports
it, 'auto' batches) and at the peers' fixed batch size in the same precision. Each timing is the
best of ``--repeat`` runs after a warm-up batch, model loading excluded. Targets on a CPU: monoT5
>= 2x both peers at their defaults and >= 1.3x at equal settings; cross-encoder >= 1.5x
``CrossEncoder`` at its defaults and >= 1.0x at equal settings; the bf16 path ranks like fp32
(checked in the tests and by the nDCG check below).

    python bench/rerank_throughput.py [--queries 4] [--depth 100] [--repeat 2] [--only monot5|cross-encoder]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402

from beirflow.data.beir import BeirFiles, document_text, prepare_dataset  # noqa: E402
from beirflow.models.batching import TokenBudget  # noqa: E402
from beirflow.rerank.candidates import Candidates  # noqa: E402
from beirflow.rerank.docstore import DocumentStore, build_document_store  # noqa: E402
from beirflow.rerank.scoring import Reranker, RerankSettings  # noqa: E402
from results import write_results  # noqa: E402

PEER_BATCH = 32  # sentence-transformers' and rerankers' default; pyterrier-t5's is 4


def scifact_pairs(data: Path, queries: int, depth: int, workdir: Path) -> tuple[list[Candidates], DocumentStore]:
    from beirflow.bm25.lucene import Bm25Params, build_index, search

    prepared = prepare_dataset("scifact", BeirFiles(data, "test"))
    chosen = dict(list(prepared.queries.items())[:queries])
    build_index(data / "corpus.jsonl", workdir / "index", "flat", threads=2)
    build_document_store(data / "corpus.jsonl", workdir / "documents.sqlite")
    shard = [
        Candidates(query_id, chosen[query_id], [doc_id for doc_id, _ in hits])
        for query_id, hits in search(workdir / "index", chosen, Bm25Params(hits=depth), threads=2)
    ]
    return shard, DocumentStore(workdir / "documents.sqlite")


T5_SIZES = {
    "base": {"d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_decoder_layers": 12, "num_heads": 12},
    "3b": {"d_model": 1024, "d_kv": 128, "d_ff": 16384, "num_layers": 24, "num_decoder_layers": 24, "num_heads": 32},
}


def build_t5(folder: Path, data: Path, size: str) -> Path:
    """A monoT5 of t5-base's or T5-3B's shape with random weights and a 16k Unigram vocabulary trained on SciFact."""
    from tokenizers import SentencePieceUnigramTokenizer, Tokenizer
    from transformers import T5Config, T5ForConditionalGeneration, T5TokenizerFast

    texts = [
        f"{record['title']} {record['text']}"
        for record in map(json.loads, (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines())
    ]
    trainer = SentencePieceUnigramTokenizer()
    trainer.train_from_iterator(
        texts, vocab_size=16_000, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    state = json.loads(trainer._tokenizer.to_str())
    pieces = {entry[0] for entry in state["model"]["vocab"]}
    state["model"]["vocab"] += [[piece, -8.0] for piece in ("▁true", "▁false") if piece not in pieces]
    tokenizer = T5TokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(state)),
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_ids=0,
    )
    torch.manual_seed(0)
    # n_positions: t5-base's own config.json carries it, and pyterrier-t5 reads it.
    config = T5Config(
        vocab_size=32_128, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, n_positions=512, **T5_SIZES[size]
    )
    T5ForConditionalGeneration(config).to(torch.bfloat16 if size == "3b" else torch.float32).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_minilm_cross_encoder(folder: Path) -> Path:
    from transformers import AutoTokenizer, BertForSequenceClassification

    from model_builders import minilm_folder

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(minilm_folder()), num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(minilm_folder())).save_pretrained(folder)
    return folder


def best_time(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def native_bf16() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def texts_of(shard: list[Candidates], store: DocumentStore) -> list[list[str]]:
    out = []
    for candidates in shard:
        documents = store.fetch(candidates.doc_ids)
        out.append([document_text(documents[doc_id]) for doc_id in candidates.doc_ids])
    return out


class Row:
    def __init__(self, model: str, pairs: int) -> None:
        self.model, self.pairs = model, pairs
        self.rows: list[tuple[str, str, float]] = []
        self.best = 0.0  # beirflow's rate at its defaults

    def add(self, who: str, settings: str, seconds: float) -> float:
        rate = self.pairs / seconds
        self.rows.append((who, settings, rate))
        print(f"  {self.model:14s} {who:34s} {settings:26s} {rate:8.1f} pairs/s", flush=True)
        return rate


def beirflow_rate(
    model: Path, kind: str, shard: list[Candidates], store: DocumentStore, precision: str, batch: int | str, repeat: int
) -> tuple[float, list[list[float]]]:
    reranker = Reranker(
        RerankSettings(kind=kind, model=str(model), first_stage="bm25", precision=precision),
        f"rerank.bench-{kind}",
        "cuda" if torch.cuda.is_available() else "cpu",
    )
    reranker.rerank(shard[:1], store, TokenBudget.for_batch_size(batch, reranker.device, reranker.max_length))  # warm-up
    scores: list[list[float]] = []

    def run() -> None:
        hits, _ = reranker.rerank(shard, store, TokenBudget.for_batch_size(batch, reranker.device, reranker.max_length))
        scores[:] = [[score for _, score in scored] for scored in hits]

    seconds = best_time(run, repeat)
    return seconds, scores


def peak_fraction(folder: Path, shard: list[Candidates], store: DocumentStore, rate: float, peak_tflops: float) -> None:
    """Pairs/s against the bf16 dense peak: 2 FLOPs per encoder parameter per input token."""
    from transformers import AutoTokenizer, T5EncoderModel

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    texts = texts_of(shard, store)
    tokens = [
        len(tokenizer(f"Query: {c.query} Document: {text} Relevant:", truncation=True, max_length=512).input_ids)
        for c, docs in zip(shard, texts, strict=False)
        for text in docs
    ]
    encoder = sum(p.numel() for p in T5EncoderModel.from_pretrained(str(folder)).parameters())
    ceiling = peak_tflops * 1e12 / (2 * encoder * (sum(tokens) / len(tokens)))
    print(
        f"  encoder {encoder / 1e9:.2f}B parameters, {sum(tokens) / len(tokens):.0f} tokens a pair: ceiling {ceiling:.0f} pairs/s at {peak_tflops:.0f} TFLOPS; beirflow at {rate / ceiling:.0%} of it"
    )


def bench_monot5(
    folder: Path, shard: list[Candidates], store: DocumentStore, repeat: int, precision: str, peers: bool = True
) -> Row:
    pairs = sum(len(c.doc_ids) for c in shard)
    row = Row(f"monoT5-{folder.name}", pairs)
    texts = texts_of(shard, store)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    ours_default = row.add(
        "beirflow", f"{precision}, auto batch", beirflow_rate(folder, "monot5", shard, store, precision, "auto", repeat)[0]
    )
    ours_fixed = row.add(
        "beirflow",
        f"{precision}, batch {PEER_BATCH}",
        beirflow_rate(folder, "monot5", shard, store, precision, PEER_BATCH, repeat)[0],
    )
    row.best = ours_default
    if not peers:
        return row

    from rerankers import Reranker as PeerReranker

    def rerankers_run(ranker: Any) -> Callable[[], object]:
        return lambda: [ranker.rank(c.query, docs) for c, docs in zip(shard, texts, strict=False)]

    default = PeerReranker(str(folder), model_type="t5", verbose=0, token_false="▁false", token_true="▁true")
    peer_default = row.add(
        "rerankers T5Ranker", f"defaults ({default.model.dtype}, {default.batch_size})", best_time(rerankers_run(default), repeat)
    )
    equal = PeerReranker(
        str(folder), model_type="t5", verbose=0, dtype=dtype, batch_size=PEER_BATCH, token_false="▁false", token_true="▁true"
    )
    peer_equal = row.add("rerankers T5Ranker", f"{precision}, batch {PEER_BATCH}", best_time(rerankers_run(equal), repeat))
    ratios = {"rerankers": (ours_default / peer_default, ours_fixed / peer_equal)}

    import pandas as pd
    from pyterrier_t5 import MonoT5ReRanker

    frame = pd.DataFrame(
        [
            {"qid": c.query_id, "query": c.query, "docno": doc_id, "text": text}
            for c, docs in zip(shard, texts, strict=False)
            for doc_id, text in zip(c.doc_ids, docs, strict=False)
        ]
    )
    pyterrier = MonoT5ReRanker(tok_model=str(folder), model=str(folder), verbose=False, device=device)
    peer_default = row.add(
        "pyterrier-t5 MonoT5ReRanker",
        f"defaults (fp32, {pyterrier.batch_size})",
        best_time(lambda: pyterrier.transform(frame), repeat),
    )
    pyterrier.batch_size = PEER_BATCH
    pyterrier.model.to(dtype)
    peer_equal = row.add(
        "pyterrier-t5 MonoT5ReRanker", f"{precision}, batch {PEER_BATCH}", best_time(lambda: pyterrier.transform(frame), repeat)
    )
    ratios["pyterrier-t5"] = (ours_default / peer_default, ours_fixed / peer_equal)
    for peer, (at_defaults, at_equal) in ratios.items():
        print(
            f"  ratio vs {peer}: {at_defaults:.2f}x at defaults (target >= 2), {at_equal:.2f}x at equal settings (target >= 1.3)"
        )
    return row


def bench_cross_encoder(folder: Path, shard: list[Candidates], store: DocumentStore, repeat: int, precision: str) -> Row:
    from sentence_transformers import CrossEncoder

    pairs = sum(len(c.doc_ids) for c in shard)
    row = Row("MiniLM-L6 CE", pairs)
    texts = texts_of(shard, store)
    flat = [(c.query, text) for c, docs in zip(shard, texts, strict=False) for text in docs]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ours_default = row.add(
        "beirflow", f"{precision}, auto batch", beirflow_rate(folder, "cross-encoder", shard, store, precision, "auto", repeat)[0]
    )
    ours_fixed = row.add(
        "beirflow",
        f"{precision}, batch {PEER_BATCH}",
        beirflow_rate(folder, "cross-encoder", shard, store, precision, PEER_BATCH, repeat)[0],
    )
    default = CrossEncoder(str(folder), device=device, max_length=512)
    peer_default = row.add(
        "sentence-transformers CrossEncoder",
        f"defaults (fp32, {PEER_BATCH})",
        best_time(lambda: default.predict(flat, batch_size=PEER_BATCH), repeat),
    )
    equal = CrossEncoder(
        str(folder),
        device=device,
        max_length=512,
        model_kwargs={"dtype": torch.bfloat16 if precision == "bf16" else torch.float32},
    )
    peer_equal = row.add(
        "sentence-transformers CrossEncoder",
        f"{precision}, batch {PEER_BATCH}",
        best_time(lambda: equal.predict(flat, batch_size=PEER_BATCH), repeat),
    )
    print(
        f"  ratio vs CrossEncoder: {ours_default / peer_default:.2f}x at defaults (target >= 1.5), {ours_fixed / peer_equal:.2f}x at equal settings (target >= 1.0)"
    )
    return row


def bf16_ndcg_check(data: Path, workdir: Path, shard: list[Candidates], store: DocumentStore) -> None:
    """all-MiniLM-L6-v2 as a bi-encoder reranker of BM25's top 100, bf16 against fp32: nDCG@10 within 0.001."""
    from beirflow.data.beir import read_qrels_tsv
    from beirflow.evaluate.metrics import evaluate_run
    from model_builders import minilm_folder

    qrels, _ = read_qrels_tsv(BeirFiles(data, "test").qrels)
    values = {}
    for precision in ("fp32", "bf16"):
        reranker = Reranker(
            RerankSettings(kind="bi-encoder", model=str(minilm_folder()), first_stage="bm25", precision=precision),
            "rerank.minilm",
            "cpu",
        )
        hits, _ = reranker.rerank(shard, store, TokenBudget.for_batch_size("auto", "cpu", 256))
        run = {c.query_id: dict(scored) for c, scored in zip(shard, hits, strict=False)}
        values[precision] = evaluate_run({q: qrels[q] for q in run}, run, ["ndcg@10"]).metrics["ndcg@10"]
    print(
        f"  all-MiniLM-L6-v2 reranking BM25 top 100 of {len(shard)} SciFact queries: nDCG@10 fp32 {values['fp32']:.4f}, bf16 {values['bf16']:.4f}, difference {values['bf16'] - values['fp32']:+.4f} (target within 0.001)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--queries", type=int, default=4, help="SciFact test queries; pairs = queries x depth")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", choices=["monot5", "cross-encoder", "ndcg"])
    parser.add_argument(
        "--t5-size",
        choices=sorted(T5_SIZES),
        default="base",
        help="'3b' on a GPU: beirflow alone, and its fraction of the bf16 peak",
    )
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the device's dense bf16 peak (H100 SXM: 989)")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    precision = "bf16" if native_bf16() else "fp32"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"rerank throughput, {time.strftime('%Y-%m-%d')}, {device}, beirflow precision {precision}", flush=True)
    with tempfile.TemporaryDirectory(prefix="beirflow-bench-") as scratch:
        workdir = Path(scratch)
        shard, store = scifact_pairs(args.data, args.queries, args.depth, workdir)
        print(
            f"  {sum(len(c.doc_ids) for c in shard)} pairs: {len(shard)} SciFact test queries x BM25 top {args.depth}", flush=True
        )
        measured = []
        if args.only in (None, "cross-encoder"):
            measured.append(
                bench_cross_encoder(build_minilm_cross_encoder(workdir / "minilm-ce"), shard, store, args.repeat, precision)
            )
        if args.only in (None, "monot5"):
            folder = build_t5(workdir / args.t5_size, args.data, args.t5_size)
            row = bench_monot5(folder, shard, store, args.repeat, precision, peers=args.t5_size == "base")
            measured.append(row)
            if torch.cuda.is_available():
                peak_fraction(folder, shard, store, row.best, args.peak_tflops)
        if measured:
            write_results(
                "rerank_throughput",
                [
                    {
                        "model": row.model,
                        "device": device,
                        "pairs": row.pairs,
                        "who": who,
                        "settings": settings,
                        "pairs/s": f"{rate:.1f}",
                    }
                    for row in measured
                    for who, settings, rate in row.rows
                ],
            )
        if args.only in (None, "ndcg"):
            ndcg_shard, ndcg_store = scifact_pairs(args.data, 300, 100, workdir / "ndcg")
            bf16_ndcg_check(args.data, workdir, ndcg_shard, ndcg_store)


if __name__ == "__main__":
    main()
