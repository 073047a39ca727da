"""GPU throughput of every reranker and encoder of a config, for ``scripts/plan_grid.py``'s GPU-hours.

No model hub can be reached from the GPU machine, so each model is built with its real shape
(``ARCHITECTURES``: layers, widths, heads and vocabulary of the model's own config.json) and random
weights, created on the GPU in the config's precision; speed does not depend on the weights.
Everything else is beirflow's own path, as a rerank or encode job runs it: ``Reranker.rerank`` over
candidates read by id from the document store, ``TextEncoder.encode`` over documents, tokenized in
a worker thread, length-sorted batches filled to the 'auto' token budget.

Inputs are real: SciFact test queries with their BM25 top-100 (title and text joined, as pygaggle
does) for rerankers, SciFact abstracts for encoders. Tokenizers: all-MiniLM-L6-v2's WordPiece vocabulary
(BERT's own, for the BERT-shaped models); for T5, GPT and Llama shapes, tokenizers of the real vocabulary
size trained on the SciFact corpus, since none of theirs can be had here (the tokens per input are
printed beside BERT's, so the difference shows). Every model reads at most the config's ``max_length``,
else 512 tokens. Each rate is one timed pass sized to last about ``--seconds``, after a warm-up pass.

Two steps, because BM25 needs Java and the GPU machine need not have it:

    python bench/gpu_throughput.py prepare .gpubench                    # here: inputs and tokenizers
    python bench/gpu_throughput.py measure .gpubench --out h100.csv      # there: one row per model
    python bench/gpu_throughput.py merge h100.csv                       # here: into bench/throughput.csv

``measure`` takes the enabled systems of ``--config`` (config/paper.yaml) first, then the disabled ones,
and stops starting new models after ``--budget`` seconds, so a short lease still brings back rows.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from beirflow.dense.search import DenseSettings  # noqa: E402
from beirflow.models.batching import TokenBudget  # noqa: E402
from beirflow.models.encoder import SPECB_BRACKETS, EncoderSettings  # noqa: E402
from beirflow.models.loading import pick_device  # noqa: E402
from beirflow.rerank.candidates import Candidates  # noqa: E402
from beirflow.rerank.scoring import RerankSettings  # noqa: E402
from model_builders import ARCHITECTURES, build_shape, minilm_folder, random_weights, shape_config, train_tokenizer  # noqa: E402

THROUGHPUT_CSV = REPO / "bench" / "throughput.csv"
COLUMNS = ("model", "kind", "device", "precision", "per_second", "unit", "measured", "source")
DEPTH = 100  # candidates a query in the prepared inputs

# ---------------------------------------------------------------- prepare (any machine with Java)


def corpus_texts(corpus: Path) -> list[str]:
    from beirflow.data.beir import document_text, iter_corpus

    return [document_text(document) for _, document in iter_corpus(corpus)]


def prepare(data: Path, out: Path, queries: int) -> None:
    import tempfile

    from transformers import AutoTokenizer

    from beirflow.bm25.lucene import Bm25Params, build_index, search
    from beirflow.data.beir import BeirFiles, prepare_dataset
    from beirflow.rerank.docstore import build_document_store

    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_dataset("scifact", BeirFiles(data, "test"))
    chosen = dict(list(prepared.queries.items())[:queries])
    with tempfile.TemporaryDirectory() as work:
        build_index(data / "corpus.jsonl", Path(work) / "index", "flat", threads=2)
        hits = list(search(Path(work) / "index", chosen, Bm25Params(hits=DEPTH), threads=2))
    with open(out / "candidates.jsonl", "w", encoding="utf-8") as handle:
        for query_id, ranked in hits:
            handle.write(
                json.dumps({"query_id": query_id, "query": chosen[query_id], "doc_ids": [doc_id for doc_id, _ in ranked]}) + "\n"
            )
    build_document_store(data / "corpus.jsonl", out / "documents.sqlite")
    shutil.copyfile(data / "corpus.jsonl", out / "corpus.jsonl")
    texts = corpus_texts(data / "corpus.jsonl")
    AutoTokenizer.from_pretrained(str(minilm_folder())).save_pretrained(out / "tokenizers" / "bert")
    for kind in ("t5", "gpt", "llama"):
        train_tokenizer(kind, texts, out / "tokenizers" / kind)
    print(f"prepared {out}: {len(hits)} queries x {DEPTH} candidates, {len(texts)} documents, tokenizers bert t5 gpt llama")


# ---------------------------------------------------------------- measure (the GPU machine)


def model_folder(name: str, kind: str, data: Path, work: Path) -> Path:
    """config.json of the model's shape beside the tokenizer of its family; no weights."""
    config, family = shape_config(name, kind)
    folder = work / name.replace("/", "--")
    shutil.copytree(data / "tokenizers" / family, folder, dirs_exist_ok=True)
    config.save_pretrained(folder)
    return folder


MINILM_SHAPES = {
    "cross-encoder": "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "dense": "sentence-transformers/msmarco-MiniLM-L6-cos-v5",
}


def saved_minilm_shape(kind: str, data: Path, work: Path) -> Path:
    """A MiniLM-L6 of ``kind`` with random weights (seeded) saved in a folder, for code that loads from one."""
    import torch

    name = MINILM_SHAPES[kind]
    folder = model_folder(name, kind, data, work)
    torch.manual_seed(0)
    build_shape(name, kind, "cpu").save_pretrained(folder)
    return folder


def read_candidates(path: Path) -> list[Candidates]:
    return [
        Candidates(row["query_id"], row["query"], row["doc_ids"])
        for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())
    ]


def cycled(items: Sequence[Any], count: int) -> list[Any]:
    return [items[index % len(items)] for index in range(count)]


def timed(run: Callable[[], object]) -> float:
    import torch

    synchronize = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    synchronize()
    started = time.perf_counter()
    run()
    synchronize()
    return time.perf_counter() - started


def _timed_run(run: Callable[[int], object], count: int) -> float:
    return timed(lambda: run(count))


def sized_pass(measure: Callable[[int], float], warm_up: int, probe: int, seconds: float, most: int) -> tuple[int, float]:
    """Warm up, probe the rate, then time one pass of the size that lasts about ``seconds``."""
    measure(warm_up)
    rate = probe / measure(probe)
    count = max(probe, min(most, int(rate * seconds)))
    return count, measure(count)


def flops_per_token(model: Any) -> int:
    """2 FLOPs per weight an input token passes through (monoT5: the encoder; the one decoder step is
    left out), embeddings excluded."""
    encoder = (
        model.get_encoder() if hasattr(model, "get_encoder") and getattr(model.config, "is_encoder_decoder", False) else model
    )
    embedding = model.get_input_embeddings().weight.numel()
    return 2 * (sum(parameter.numel() for parameter in encoder.parameters()) - embedding)


def measure_reranker(name: str, entry: dict[str, Any], key: str, data: Path, work: Path, seconds: float) -> dict[str, Any]:
    from beirflow.data.beir import document_text
    from beirflow.rerank.docstore import DocumentStore
    from beirflow.rerank.scoring import PairScorer, Reranker

    settings = replace(
        RerankSettings.from_config(entry),
        model=str(model_folder(entry["model"], entry["kind"], data, work)),
        revision=None,
        adapter=None,
        adapter_revision=None,
    )
    reranker = Reranker(settings, key, pick_device(), load_weights=random_weights)
    store = DocumentStore(data / "documents.sqlite")
    candidates = read_candidates(data / "candidates.jsonl")
    budget = TokenBudget.for_batch_size("auto", reranker.device, reranker.max_length)

    def measure(queries: int) -> float:
        return timed(lambda: reranker.rerank(cycled(candidates, queries), store, budget))

    queries, elapsed = sized_pass(measure, 2, 8, seconds, 20 * len(candidates))
    scorer = reranker.model
    assert isinstance(scorer, PairScorer), "the paper's rerankers are pair scorers"
    sample = cycled(candidates, min(queries, 20))
    documents = store.fetch(sorted({doc_id for c in sample for doc_id in c.doc_ids}))
    pairs = [(c.query, document_text(documents[doc_id])) for c in sample for doc_id in c.doc_ids]
    tokens = sum(len(features.input_ids) for features in scorer.tokenize(pairs)) / len(pairs)
    store.close()
    return {
        "count": queries * DEPTH,
        "seconds": elapsed,
        "unit": "pairs",
        "tokens": tokens,
        "flops_per_token": flops_per_token(scorer.model),
        "parameters": reranker.parameters,
    }


def measure_encoder(name: str, entry: dict[str, Any], key: str, data: Path, work: Path, seconds: float) -> dict[str, Any]:
    from beirflow.models.encoder import TextEncoder
    from beirflow.models.loading import resolve_model

    dense = DenseSettings.from_config(entry)
    folder = model_folder(entry["model"], "dense", data, work)
    brackets = SPECB_BRACKETS["documents"] if dense.specb else None
    encoder = TextEncoder(
        resolve_model(str(folder), None, f"{key}.model"),
        EncoderSettings(dense.pooling or "mean", dense.normalize, dense.max_length, brackets),
        key,
        dense.precision,
        pick_device(),
        load_weights=random_weights,
    )
    texts = [dense.document_prefix + text for text in corpus_texts(data / "corpus.jsonl")]
    budget = TokenBudget.for_batch_size("auto", pick_device(), encoder.max_length)

    def measure(count: int) -> float:
        return timed(lambda: encoder.encode(cycled(texts, count), budget))

    count, elapsed = sized_pass(measure, 256, 1024, seconds, 20 * len(texts))
    sample = texts[:2000]
    tokens = sum(len(features.input_ids) for features in encoder.tokenize(sample)) / len(sample)
    return {
        "count": count,
        "seconds": elapsed,
        "unit": "documents",
        "tokens": tokens,
        "flops_per_token": flops_per_token(encoder.model),
        "parameters": sum(p.numel() for p in encoder.model.parameters()),
    }


def measure_sparse_encoder(name: str, entry: dict[str, Any], key: str, data: Path, work: Path, seconds: float) -> dict[str, Any]:
    """SPLADE's document encoding as an encode_sparse_documents job runs it: batches of the entry's
    batch_size, padded to their longest, and the quantized weights per term collected on the host."""
    from beirflow.models.loading import resolve_model
    from beirflow.sparse.splade import SpladeEncoder, SpladeSettings

    settings = SpladeSettings.from_config(entry, key)
    folder = model_folder(entry["model"], "splade", data, work)
    encoder = SpladeEncoder.load(
        resolve_model(str(folder), None, f"{key}.model"), f"{key}.model", settings.precision, pick_device(), random_weights
    )
    texts = corpus_texts(data / "corpus.jsonl")
    batch_size = int(entry.get("batch_size", 32))

    def measure(count: int) -> float:
        return timed(lambda: list(encoder.documents(cycled(texts, count), settings.document_max_length, batch_size)))

    count, elapsed = sized_pass(measure, 64, 256, seconds, 20 * len(texts))
    sample = texts[:2000]
    tokens = sum(
        len(ids) for ids in encoder.tokenizer(sample, max_length=settings.document_max_length, truncation=True)["input_ids"]
    ) / len(sample)
    head = encoder.model.get_output_embeddings().weight.numel()  # the masked-LM head runs on every token
    return {
        "count": count,
        "seconds": elapsed,
        "unit": "documents",
        "tokens": tokens,
        "flops_per_token": flops_per_token(encoder.model) + 2 * head,
        "parameters": sum(p.numel() for p in encoder.model.parameters()),
    }


MEASURES: dict[str, Callable[..., dict[str, Any]]] = {"dense": measure_encoder, "splade": measure_sparse_encoder}


def peer_rates(data: Path, work: Path, seconds: float) -> dict[str, float]:
    """What users would otherwise run, on the same device, inputs and shape (MiniLM-L6, random weights
    saved once so both load them): ``CrossEncoder.predict`` and ``SentenceTransformer.encode`` at
    their default batch of 32, in bf16."""

    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer

    from beirflow.data.beir import document_text
    from beirflow.rerank.docstore import DocumentStore

    device = pick_device()
    store = DocumentStore(data / "documents.sqlite")
    candidates = read_candidates(data / "candidates.jsonl")[:20]
    documents = store.fetch(sorted({doc_id for c in candidates for doc_id in c.doc_ids}))
    pairs = [(c.query, document_text(documents[doc_id])) for c in candidates for doc_id in c.doc_ids]
    store.close()
    texts = corpus_texts(data / "corpus.jsonl")
    rates = {}
    for kind, name in MINILM_SHAPES.items():
        folder = saved_minilm_shape(kind, data, work / "peers")
        if kind == "cross-encoder":
            peer: Any = CrossEncoder(str(folder), device=device, max_length=512)
            peer.model.to(torch.bfloat16)

            def run(count: int, peer: Any = peer) -> object:
                return peer.predict(cycled(pairs, count), batch_size=32)
        else:
            peer = SentenceTransformer(str(folder), device=device)
            peer.to(torch.bfloat16)
            peer.max_seq_length = 512

            def run(count: int, peer: Any = peer) -> object:
                return peer.encode(cycled(texts, count), batch_size=32)

        count, elapsed = sized_pass(partial(_timed_run, run), 256, 1024, seconds, 20_000)
        rates[name] = count / elapsed
    return rates


def check_gpu_path(data: Path, work: Path) -> None:
    """The GPU path (pinned non-blocking copies, outputs kept on the device) gives the CPU path's
    numbers: the MiniLM-L6 shapes with the same seeded weights, fp32 on both, then bf16 on the GPU."""

    import numpy as np
    import torch

    from beirflow.models.encoder import TextEncoder
    from beirflow.models.loading import resolve_model
    from beirflow.rerank.docstore import DocumentStore
    from beirflow.rerank.scoring import Reranker

    store = DocumentStore(data / "documents.sqlite")
    candidates = read_candidates(data / "candidates.jsonl")[:5]
    texts = corpus_texts(data / "corpus.jsonl")[:500]
    for kind in MINILM_SHAPES:
        folder = saved_minilm_shape(kind, data, work / "check")  # real weights from a folder, as a job loads them
        outputs = {}
        checked = [("cuda", "fp32"), ("cuda", "bf16")] if torch.cuda.is_available() else [("cpu", "bf16")]
        for device, precision in [("cpu", "fp32"), *checked]:
            if kind == "cross-encoder":
                reranker = Reranker(
                    RerankSettings(kind=kind, model=str(folder), first_stage="bm25", precision=precision), "rerank.check", device
                )
                hits, _ = reranker.rerank(candidates, store, TokenBudget.for_batch_size("auto", device, reranker.max_length))
                outputs[device, precision] = np.array([score for query in hits for _, score in query])
            else:
                encoder = TextEncoder(
                    resolve_model(str(folder), None, "dense.check.model"),
                    EncoderSettings("mean", True, None),
                    "dense.check",
                    precision,
                    device,
                )
                outputs[device, precision] = encoder.encode(texts, TokenBudget.for_batch_size("auto", device, encoder.max_length))
        reference = outputs["cpu", "fp32"]
        for setting in checked:
            gap = float(np.abs(outputs[setting] - reference).max())
            if kind == "cross-encoder":
                agree = float(np.corrcoef(outputs[setting], reference)[0, 1])
                print(
                    f"  check {kind} {setting[0]} {setting[1]} against cpu fp32: {reference.size} scores, largest difference {gap:.2e}, correlation {agree:.6f}",
                    flush=True,
                )
            else:
                cosine = float((outputs[setting] * reference).sum(axis=1).min())
                print(
                    f"  check {kind} {setting[0]} {setting[1]} against cpu fp32: {len(reference)} vectors, largest difference {gap:.2e}, lowest cosine {cosine:.6f}",
                    flush=True,
                )
    store.close()


def systems_in_order(config: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, system, entry) of each model, kind and precision the plan prices (plan_grid.model_work, every
    extension on), the first system of each; enabled systems first. ``kind`` is the throughput table's."""
    import copy

    from beirflow.workflow.plan import build
    from plan_grid import model_work

    everything = copy.deepcopy(config)
    enabled = set()
    for family in build(copy.deepcopy(config), check_models=False).families:
        for name, entry in (everything.get(family) or {}).items():
            if entry.get("enabled", True) is not False:
                enabled.add(name)
            entry["enabled"] = True
    plan = build(everything, check_models=False)
    seen: set[tuple[str, str, str]] = set()
    work = sorted(model_work(plan), key=lambda item: item.systems.split(", ")[0] not in enabled)
    for item in work:
        if (item.model, item.kind, item.precision) not in seen:
            seen.add((item.model, item.kind, item.precision))
            name = item.systems.split(", ")[0]
            yield item.kind, name, plan.entry(name)


def device_label() -> str:
    import torch

    if not torch.cuda.is_available():
        return f"cpu-{torch.get_num_threads()}-cores"
    gpu = torch.cuda.get_device_name(0)
    return next(
        (label for label in ("h200", "h100", "a100", "l40s", "a10") if label in gpu.lower()), gpu.lower().replace(" ", "-")
    )


def measure_all(
    data: Path, config_path: Path, out: Path, seconds: float, budget: float, peak_tflops: float, only: list[str], peers: bool
) -> None:
    import tempfile

    import torch
    import yaml

    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    device = device_label()
    print(
        f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'} ({device}), torch {torch.__version__}; peak bf16 {peak_tflops:.0f} TFLOP/s",
        flush=True,
    )
    started = time.monotonic()
    measured: dict[str, float] = {}
    with open(out, "w", encoding="utf-8", newline="") as handle, tempfile.TemporaryDirectory() as work:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for kind, name, entry in systems_in_order(config):
            if time.monotonic() - started > budget:
                print(f"  budget of {budget:.0f} s spent: {name} and the rest not measured", flush=True)
                break
            if only and not any(part in name for part in only):
                continue
            if entry["model"] not in ARCHITECTURES:
                print(f"  {name}: no shape for {entry['model']} in ARCHITECTURES; not measured", flush=True)
                continue
            built = time.monotonic()
            try:
                measure = MEASURES.get(kind, measure_reranker)  # the kinds that are not an encoder's score pairs
                result = measure(name, entry, f"{kind}.{name}", data, Path(work), seconds)
            except Exception as error:  # one model failing (out of memory, say) must not cost the others' rows
                print(f"  {name}: {type(error).__name__}: {error}", flush=True)
                continue
            finally:
                gc.collect()
                torch.cuda.empty_cache()
            rate = result["count"] / result["seconds"]
            tflops = rate * result["tokens"] * result["flops_per_token"] / 1e12
            precision = entry.get("precision", "bf16")
            print(
                f"  {name:16s} {kind:13s} {result['parameters'] / 1e6:8.0f}M {rate:9.1f} {result['unit']}/s  {result['tokens']:5.0f} tokens each  {tflops:6.1f} TFLOP/s ({tflops / peak_tflops:4.0%} of peak)  [{time.monotonic() - built:.0f} s with build]",
                flush=True,
            )
            source = f"bench/gpu_throughput.py: random weights of the real shape ({result['parameters'] / 1e6:.0f}M), {result['count']:,} SciFact {'BM25 top-100 pairs' if result['unit'] == 'pairs' else 'abstracts'} in {result['seconds']:.1f} s, {result['tokens']:.0f} tokens each, auto batches; {tflops / peak_tflops:.0%} of the bf16 peak"
            measured[entry["model"]] = rate
            writer.writerow(
                {
                    "model": entry["model"],
                    "kind": kind,
                    "device": device,
                    "precision": precision,
                    "per_second": f"{rate:.1f}",
                    "unit": result["unit"],
                    "measured": date.today().isoformat(),
                    "source": source,
                }
            )
            handle.flush()
        if peers:
            try:
                for model, rate in peer_rates(data, Path(work), seconds).items():
                    ours = measured.get(model)
                    print(
                        f"  peer on {model}: sentence-transformers {rate:.1f}/s at batch 32, bf16; beirflow {ours or float('nan'):.1f}/s: {(ours or float('nan')) / rate:.2f}x",
                        flush=True,
                    )
            except Exception as error:
                print(f"  peers: {type(error).__name__}: {error}", flush=True)


def merge(rows_file: Path, table: Path = THROUGHPUT_CSV) -> None:
    """Rows of ``rows_file`` replace the table's rows of the same model, kind, device and precision."""

    def key(row: dict[str, str]) -> tuple[str, ...]:
        return (row["model"], row["kind"], row["device"], row["precision"])

    with open(rows_file, encoding="utf-8") as handle:
        new = list(csv.DictReader(handle))
    with open(table, encoding="utf-8") as handle:
        old = [row for row in csv.DictReader(handle) if key(row) not in {key(item) for item in new}]
    with open(table, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(old + new)
    print(f"{table}: {len(new)} rows from {rows_file}, {len(old)} kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("prepare", help="SciFact inputs and tokenizers into a folder (needs Java for BM25)")
    step.add_argument("folder", type=Path)
    step.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    step.add_argument("--queries", type=int, default=100)
    step = steps.add_parser("measure", help="time every model of the config on this machine's GPU")
    step.add_argument("folder", type=Path)
    step.add_argument("--config", type=Path, default=REPO / "config" / "paper.yaml")
    step.add_argument("--out", type=Path, required=True)
    step.add_argument("--seconds", type=float, default=6.0, help="length of each timed pass")
    step.add_argument("--budget", type=float, default=420.0, help="no model is started after this many seconds")
    step.add_argument("--peak-tflops", type=float, default=989.0, help="the device's dense bf16 peak (H100 SXM: 989)")
    step.add_argument("--peers", action="store_true", help="then sentence-transformers on the MiniLM shapes, for a ratio")
    step.add_argument("--only", nargs="*", default=[], help="systems whose name contains one of these")
    step = steps.add_parser("check", help="the GPU path against the CPU path on the same weights and inputs")
    step.add_argument("folder", type=Path)
    step = steps.add_parser("merge", help="put measured rows into bench/throughput.csv")
    step.add_argument("rows", type=Path)
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.data, args.folder, args.queries)
    elif args.step == "check":
        import tempfile

        with tempfile.TemporaryDirectory() as work:
            check_gpu_path(args.folder, Path(work))
    elif args.step == "measure":
        measure_all(args.folder, args.config, args.out, args.seconds, args.budget, args.peak_tflops, args.only, args.peers)
    else:
        merge(args.rows)


if __name__ == "__main__":
    main()
