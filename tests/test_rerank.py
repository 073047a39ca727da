"""Rerankers against plain reference scorers: one pair at a time, fp32, unsorted, no beirflow code.

The fast path (length-sorted, dynamically padded, pipelined batches) must give the same scores
to 1e-4 and the same ranking. Models are tiny ones the tests build, with real tokenizers, and the
real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from beirflow.models.batching import Features, TokenBudget, pad, run_chunk
from beirflow.models.loading import ModelError
from beirflow.rerank.candidates import Candidates
from beirflow.rerank.docstore import DocumentStore, build_document_store
from beirflow.rerank.scoring import MONOT5_TEMPLATE, Reranker, RerankSettings
from conftest import SAMPLE

QUERIES = [json.loads(line) for line in (SAMPLE / "queries.jsonl").read_text().splitlines()][:6]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DocumentStore:
    """The sample's corpus plus an empty document and a very long one."""
    folder = tmp_path_factory.mktemp("store")
    lines = (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    lines.append(json.dumps({"_id": "empty", "title": "", "text": ""}))
    lines.append(json.dumps({"_id": "long", "title": "Long", "text": "cells divide and proteins fold " * 400}))
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_document_store(folder / "corpus.jsonl", folder / "documents.sqlite")
    return DocumentStore(folder / "documents.sqlite")


@pytest.fixture(scope="module")
def shard(store: DocumentStore) -> list[Candidates]:
    """Six real queries, 12 to 40 candidates each (fewer than any depth), one query without any."""
    ids = [json.loads(line)["_id"] for line in (SAMPLE / "corpus.jsonl").read_text().splitlines()]
    shard = [
        Candidates(str(q["_id"]), q["text"], ids[7 * i : 7 * i + 12 + 6 * i] + (["empty", "long"] if i == 1 else []))
        for i, q in enumerate(QUERIES)
    ]
    shard.append(Candidates("lonely", "a query whose first stage found nothing", []))
    return shard


def _texts(store: DocumentStore, shard: list[Candidates]) -> list[list[tuple[str, str]]]:
    out = []
    for candidates in shard:
        documents = store.fetch(candidates.doc_ids)
        out.append(
            [
                (candidates.query, f"{documents[d].title} {documents[d].text}" if documents[d].title else documents[d].text)
                for d in candidates.doc_ids
            ]
        )
    return out


def _reference_monot5(folder: Path, pairs: list[tuple[str, str]]) -> list[float]:
    """pygaggle's MonoT5 one pair at a time: the filled template, truncated to 512 tokens with its eos."""
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = T5ForConditionalGeneration.from_pretrained(folder).eval()
    true_id, false_id = tokenizer.get_vocab()["▁true"], tokenizer.get_vocab()["▁false"]
    scores = []
    for query, document in pairs:
        encoded = tokenizer(
            MONOT5_TEMPLATE.format(query=query, document=document), max_length=512, truncation=True, return_tensors="pt"
        )
        with torch.no_grad():
            logits = model(**encoded, decoder_input_ids=torch.tensor([[model.config.decoder_start_token_id]])).logits[0, -1]
        scores.append(torch.log_softmax(logits[[false_id, true_id]], dim=0)[1].item())
    return scores


def _reference_cross_encoder(folder: Path, pairs: list[tuple[str, str]]) -> list[float]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    scores = []
    for query, document in pairs:
        # Lists of one: a lone empty second text would otherwise be taken for no pair at all.
        with torch.no_grad():
            scores.append(
                model(**tokenizer([query], [document], max_length=512, truncation=True, return_tensors="pt")).logits[0, 0].item()
            )
    return scores


def _rerank(
    settings: RerankSettings, store: DocumentStore, shard: list[Candidates], budget: TokenBudget | None = None
) -> list[list[tuple[str, float]]]:
    reranker = Reranker(settings, "rerank.test", "cpu")
    hits, stats = reranker.rerank(shard, store, budget or TokenBudget(2048, 16))
    assert stats.pairs == sum(len(c.doc_ids) for c in shard) and stats.queries == len(shard)
    return hits


def _assert_same_scores_and_ranking(
    hits: list[list[tuple[str, float]]], shard: list[Candidates], reference: list[list[float]]
) -> None:
    for candidates, scored, expected in zip(shard, hits, reference, strict=False):
        assert [doc_id for doc_id, _ in scored] == candidates.doc_ids
        ours = np.array([score for _, score in scored])
        assert np.allclose(ours, expected, atol=1e-4), np.abs(ours - np.array(expected)).max()
        assert list(np.argsort(-ours, kind="stable")) == list(np.argsort(-np.array(expected), kind="stable"))


def test_monot5_equals_pygaggle_one_pair_at_a_time(tiny_monot5: Path, store: DocumentStore, shard: list[Candidates]) -> None:
    settings = RerankSettings(
        kind="monot5", model=str(tiny_monot5), first_stage="bm25-flat", precision="fp32", truncation="template"
    )
    hits = _rerank(settings, store, shard)
    reference = [_reference_monot5(tiny_monot5, pairs) for pairs in _texts(store, shard)]
    _assert_same_scores_and_ranking(hits, shard, reference)
    assert hits[-1] == []  # the query without candidates
    scores = [score for scored in hits for _, score in scored]
    assert len(set(scores)) > 0.9 * len(scores), "the tiny model must spread its scores for this test to mean anything"


def test_monot5_keeps_the_template_whole_by_default(tiny_monot5: Path, store: DocumentStore) -> None:
    """Short pairs score as in pygaggle; a long document is cut so 'Relevant:' and eos still end the input."""
    from beirflow.models.loading import resolve_model
    from beirflow.rerank.scoring import MonoT5Scorer

    settings = RerankSettings(kind="monot5", model=str(tiny_monot5), first_stage="x", precision="fp32")
    scorer = MonoT5Scorer(resolve_model(str(tiny_monot5), None, "k"), settings, "k", "cpu")
    long_text = store.fetch(["long"])["long"]
    short, long = scorer.tokenize(
        [("protein folding", "Cells divide."), ("protein folding", f"{long_text.title} {long_text.text}")]
    )
    assert len(long.input_ids) == 512
    assert scorer.tokenizer.convert_ids_to_tokens(long.input_ids[-3:]) == ["▁Relevant", ":", "</s>"]
    assert (
        short.input_ids == scorer.tokenizer(MONOT5_TEMPLATE.format(query="protein folding", document="Cells divide.")).input_ids
    )
    template = MonoT5Scorer(
        resolve_model(str(tiny_monot5), None, "k"), RerankSettings(**{**settings.to_dict(), "truncation": "template"}), "k", "cpu"
    )
    cut = template.tokenize([("protein folding", f"{long_text.title} {long_text.text}")])[0]
    assert len(cut.input_ids) == 512 and "▁Relevant" not in template.tokenizer.convert_ids_to_tokens(cut.input_ids)


def test_monot5_token_ids_come_from_the_tokenizer(tiny_monot5: Path) -> None:
    """The tiny vocabulary puts ▁true and ▁false far from t5-base's 1176 and 6136."""
    from beirflow.models.loading import resolve_model
    from beirflow.rerank.scoring import MonoT5Scorer

    settings = RerankSettings(kind="monot5", model=str(tiny_monot5), first_stage="x", precision="fp32")
    scorer = MonoT5Scorer(resolve_model(str(tiny_monot5), None, "k"), settings, "k", "cpu")
    vocabulary = scorer.tokenizer.get_vocab()
    assert (scorer.true_id, scorer.false_id) == (vocabulary["▁true"], vocabulary["▁false"])
    assert {scorer.true_id, scorer.false_id}.isdisjoint({1176, 6136})


def test_cross_encoder_equals_the_plain_model_and_sentence_transformers(
    tiny_cross_encoder: Path, store: DocumentStore, shard: list[Candidates]
) -> None:
    from sentence_transformers import CrossEncoder

    settings = RerankSettings(kind="cross-encoder", model=str(tiny_cross_encoder), first_stage="bm25-flat", precision="fp32")
    hits = _rerank(settings, store, shard)
    texts = _texts(store, shard)
    _assert_same_scores_and_ranking(hits, shard, [_reference_cross_encoder(tiny_cross_encoder, pairs) for pairs in texts])
    library = CrossEncoder(str(tiny_cross_encoder), device="cpu", max_length=512, activation_fn=torch.nn.Identity())
    _assert_same_scores_and_ranking(hits, shard, [list(library.predict(pairs)) if pairs else [] for pairs in texts])


def test_cross_encoder_with_two_classes_scores_the_positive_one(
    tmp_path: Path, store: DocumentStore, shard: list[Candidates]
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from model_builders import build_tiny_cross_encoder

    folder = build_tiny_cross_encoder(tmp_path / "two", num_labels=2)
    hits = _rerank(RerankSettings(kind="cross-encoder", model=str(folder), first_stage="x", precision="fp32"), store, shard[:2])
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForSequenceClassification.from_pretrained(folder).eval()
    query, document = _texts(store, shard[:1])[0][3]
    with torch.no_grad():
        logits = model(**tokenizer([query], [document], truncation=True, max_length=512, return_tensors="pt")).logits[0]
    assert hits[0][3][1] == pytest.approx(torch.log_softmax(logits, dim=0)[1].item(), abs=1e-5)


def test_bi_encoder_equals_sentence_transformers_cosine(minilm: Path, store: DocumentStore, shard: list[Candidates]) -> None:
    from sentence_transformers import SentenceTransformer

    settings = RerankSettings(kind="bi-encoder", model=str(minilm), first_stage="x", precision="fp32")
    hits = _rerank(settings, store, shard)
    library = SentenceTransformer(str(minilm), device="cpu")
    reference = []
    for pairs in _texts(store, shard):
        if not pairs:
            reference.append([])
            continue
        query = library.encode([pairs[0][0]], convert_to_numpy=True)[0]
        documents = library.encode([document for _, document in pairs], convert_to_numpy=True)
        reference.append(list(documents @ query))
    _assert_same_scores_and_ranking(hits, shard, reference)


def test_bf16_ranks_like_fp32(minilm: Path, store: DocumentStore, shard: list[Candidates]) -> None:
    """On the shard's first three queries (the empty and the long document among them) and the one without
    candidates. On a CPU without native bf16 its matrix products are emulated: on these queries the bf16 pass
    took 26 CPU-seconds where fp32 took 9 (the test took 58 on the whole shard)."""
    shard = [*shard[:3], shard[-1]]
    assert {"empty", "long"} <= {doc_id for candidates in shard for doc_id in candidates.doc_ids} and not shard[-1].doc_ids
    exact = _rerank(RerankSettings(kind="bi-encoder", model=str(minilm), first_stage="x", precision="fp32"), store, shard)
    fast = _rerank(RerankSettings(kind="bi-encoder", model=str(minilm), first_stage="x", precision="bf16"), store, shard)
    for ours, reference in zip(fast, exact, strict=False):
        assert np.allclose([s for _, s in ours], [s for _, s in reference], atol=5e-3)


def test_rankllama_layout_merges_its_lora_adapter_and_scores_the_last_token(
    tmp_path: Path, store: DocumentStore, shard: list[Candidates]
) -> None:
    """A Llama classifier with a LoRA adapter (RankLLaMA's layout), batched with padding, equals
    the unmerged PEFT model run one pair at a time as RankLLaMA's model card does."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from model_builders import build_tiny_rankllama

    base, adapter = build_tiny_rankllama(tmp_path / "rankllama")
    settings = RerankSettings(
        kind="cross-encoder",
        model=str(base),
        adapter=str(adapter),
        first_stage="x",
        precision="fp32",
        query_template="query: {query}",
        document_template="document: {document}",
    )
    hits = _rerank(settings, store, shard)
    tokenizer = AutoTokenizer.from_pretrained(base)
    plain = AutoModelForSequenceClassification.from_pretrained(base).eval()
    peft = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base), str(adapter)).eval()

    def reference(model: object, pairs: list[tuple[str, str]]) -> list[float]:
        scores = []
        for query, document in pairs:
            encoded = tokenizer(
                [f"query: {query}"], [f"document: {document}"], max_length=512, truncation=True, return_tensors="pt"
            )
            with torch.no_grad():
                scores.append(model(**encoded).logits[0, 0].item())  # type: ignore[operator]
        return scores

    texts = _texts(store, shard)
    _assert_same_scores_and_ranking(hits, shard, [reference(peft, pairs) for pairs in texts])
    without_adapter = [reference(plain, pairs) for pairs in texts]
    assert not np.allclose(
        [score for scored in hits for _, score in scored], [score for scores in without_adapter for score in scores], atol=1e-3
    )


def test_an_adapter_without_its_config_names_the_config_key(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    settings = RerankSettings(kind="cross-encoder", model=str(tiny_cross_encoder), adapter=str(tmp_path), first_stage="x")
    with pytest.raises(ModelError, match=r"rerank\.test\.adapter: .*adapter_config\.json"):
        Reranker(settings, "rerank.test", "cpu")


def test_batching_never_changes_scores(tiny_cross_encoder: Path, store: DocumentStore, shard: list[Candidates]) -> None:
    settings = RerankSettings(kind="cross-encoder", model=str(tiny_cross_encoder), first_stage="x", precision="fp32")
    one = _rerank(settings, store, shard, TokenBudget(512, 1))
    many = _rerank(settings, store, shard, TokenBudget(1 << 20, 4096))
    for a, b in zip(one, many, strict=False):
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


def test_batches_fill_the_token_budget_longest_first() -> None:
    budget = TokenBudget(tokens=100, max_batch=4)
    lengths = [10, 50, 20, 30, 5, 5, 5, 5, 5, 60]
    batches = budget.batches(lengths)
    assert sorted(index for batch in batches for index in batch) == list(range(len(lengths)))
    assert all(len(batch) * lengths[batch[0]] <= 100 or len(batch) == 1 for batch in batches)
    assert all(len(batch) <= 4 for batch in batches)
    widths = [lengths[batch[0]] for batch in batches]
    assert widths == sorted(widths, reverse=True) and widths[0] == 60


def test_out_of_memory_halves_the_budget_and_retries_the_batch() -> None:
    """CUDA's out-of-memory error, raised as a GPU raises it, for batches over 3 inputs."""
    calls = []

    def forward(batch: dict) -> torch.Tensor:
        rows = batch["input_ids"].size(0)
        calls.append(rows)
        if rows > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return batch["input_ids"].sum(dim=1).float()

    features = [Features(list(range(1, n + 2))) for n in range(10)]
    budget = TokenBudget(tokens=1000, max_batch=16)
    scores = run_chunk(features, forward, 0, "cpu", budget)
    assert list(scores) == [sum(range(1, n + 2)) for n in range(10)]
    failed = [rows for rows in calls if rows > 3]
    assert failed == sorted(failed, reverse=True) and failed[0] == 10 and len(set(failed)) == len(failed)
    assert sum(rows for rows in calls if rows <= 3) == 10  # every input scored once, after the halvings
    assert budget.max_batch <= 3  # the smaller budget is kept for the rest of the job


def test_pad_right_pads_ids_segments_and_mask() -> None:
    features = [Features([5, 6, 7], [0, 0, 1]), Features([8], [0]), Features([9, 10], None)]
    batch = pad(features, 0, "cpu")
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert all(tensor.dtype == torch.long for tensor in batch.values())
    assert "token_type_ids" not in pad([Features([1, 2])], 0, "cpu")


def test_vectors_come_back_in_input_order_across_batches() -> None:
    """Rows of a 2-D output (embeddings) land where their input was, whatever the length sort."""

    def forward(batch: dict) -> torch.Tensor:
        ids = batch["input_ids"].float()
        return torch.stack([ids[:, 0], batch["attention_mask"].sum(dim=1).float()], dim=1)

    features = [Features([first] * length) for first, length in ((3, 2), (1, 9), (4, 1), (2, 5), (7, 3))]
    vectors = run_chunk(features, forward, 0, "cpu", TokenBudget(tokens=12, max_batch=2))
    assert vectors.tolist() == [[3, 2], [1, 9], [4, 1], [2, 5], [7, 3]]


def test_other_errors_are_not_retried() -> None:
    def forward(batch: dict) -> torch.Tensor:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_chunk([Features([1, 2]), Features([3])], forward, 0, "cpu", TokenBudget(100, 8))


def test_a_model_folder_without_weights_names_the_config_key(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    folder = tmp_path / "no-weights"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((tiny_cross_encoder / name).read_bytes())
    with pytest.raises(ModelError, match=r"config key rerank.test.model: model '.*no-weights' has no weights"):
        Reranker(RerankSettings(kind="cross-encoder", model=str(folder), first_stage="x"), "rerank.test", "cpu")


def test_an_unreachable_hub_model_names_the_config_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelError,
        match=r"(?s)config key rerank.test.model: model 'castorini/monot5-base-msmarco-10k' cannot be found.*HF_HUB_OFFLINE",
    ):
        Reranker(
            RerankSettings(kind="monot5", model="castorini/monot5-base-msmarco-10k", revision="77f8e3b", first_stage="x"),
            "rerank.test",
            "cpu",
        )


def test_a_t5_without_true_and_false_tokens_is_not_a_monot5(minilm: Path) -> None:
    with pytest.raises(ModelError, match=r"config key rerank.test.model"):
        Reranker(RerankSettings(kind="monot5", model=str(minilm), first_stage="x"), "rerank.test", "cpu")


@pytest.mark.parametrize("kind", ["monot5", "cross-encoder", "bi-encoder"])
def test_a_benchmark_injects_random_weights_of_the_same_shape_through_load_weights(
    kind: str, tiny_monot5: Path, tiny_cross_encoder: Path, minilm: Path, store: DocumentStore, shard: list[Candidates]
) -> None:
    """The seam bench/gpu_throughput.py times the paper's models through: the same Reranker, loader and
    tokenizer, only the weights random (no monkeypatching); what a job loads is untouched."""
    from model_builders import random_weights

    folder = {"monot5": tiny_monot5, "cross-encoder": tiny_cross_encoder, "bi-encoder": minilm}[kind]
    settings = RerankSettings(kind=kind, model=str(folder), first_stage="x", precision="fp32")
    saved = Reranker(settings, "rerank.test", "cpu")
    torch.manual_seed(12345)  # not the seed the tiny models were built with
    random = Reranker(settings, "rerank.test", "cpu", load_weights=random_weights)
    saved_module = saved.model.encoder.model if kind == "bi-encoder" else saved.model.model  # type: ignore[union-attr]
    random_module = random.model.encoder.model if kind == "bi-encoder" else random.model.model  # type: ignore[union-attr]
    assert type(random_module) is type(saved_module) and random.parameters == saved.parameters
    assert not all(torch.equal(a, b) for a, b in zip(random_module.parameters(), saved_module.parameters(), strict=True))
    budget = TokenBudget.for_batch_size("auto", "cpu", random.max_length)
    hits, _ = random.rerank(shard[:2], store, budget)
    assert [len(query) for query in hits] == [len(candidates.doc_ids) for candidates in shard[:2]]
    assert _rerank(settings, store, shard[:2]) == saved.rerank(shard[:2], store, budget)[0]
