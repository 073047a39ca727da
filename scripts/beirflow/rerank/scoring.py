"""Rerankers: monoT5 as pygaggle scores it, cross-encoders, and bi-encoders, over a query shard.

monoT5 (Nogueira et al., 2020; the paper used pygaggle's ``MonoT5``): the input is
``Query: {query} Document: {document} Relevant:`` followed by the end-of-sequence token, at most
``max_length`` (512) tokens; one encoder pass and one decoder step from the decoder start token;
the score is the log-softmax over the logits of ``▁false`` and ``▁true``, the ``true`` part. The
token ids are looked up in the tokenizer. Two ways to fit a long document into 512 tokens:

* ``truncation: document`` (beirflow's default): the document is cut so the template stays whole
  and the model always sees the ``Relevant:`` it was trained to answer after.
* ``truncation: template`` (pygaggle, the paper): the filled template is cut at 511 tokens, so a
  long document loses the trailing ``Relevant:``.

Both give the same input whenever the filled template fits, which is most pairs.

Cross-encoders (``AutoModelForSequenceClassification``): query and document as a text pair,
truncated longest-first to ``max_length`` as sentence-transformers' ``CrossEncoder`` does; the
score is the one logit, or the log-probability of the positive (last) class of two.

Bi-encoders: cosine (or dot product) between the query's and the document's embeddings from
:mod:`beirflow.models.encoder`, the same code dense retrieval runs.

A document is its title and text joined by a space, as BEIR and pygaggle join them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from beirflow.data.beir import document_text
from beirflow.models.batching import Features, TokenBudget, pipelined
from beirflow.models.encoder import EncoderSettings, TextEncoder
from beirflow.models.loading import (
    LoadWeights,
    ModelError,
    ResolvedModel,
    adapter_weights,
    input_device,
    load_pretrained,
    loader_for,
    merge_adapter,
    resolve_model,
)
from beirflow.rerank.candidates import Candidates
from beirflow.rerank.docstore import DocumentStore
from beirflow.workflow.progress import Progress
from beirflow.workflow.settings import decode

KINDS = ("monot5", "cross-encoder", "bi-encoder")
MONOT5_TEMPLATE = "Query: {query} Document: {document} Relevant:"
MONOT5_TOKENS = ("▁false", "▁true")
CHUNK_PAIRS = 2048  # pairs fetched and tokenized ahead of the model at a time


@dataclass(frozen=True)
class RerankSettings:
    """The keys of a reranker's config entry that change its scores (the rule params)."""

    kind: str
    model: str
    first_stage: str
    revision: str | None = None
    depth: int = 1000
    precision: str = "bf16"
    max_length: int | None = None  # None: 512, or the bi-encoder folder's own maximum
    truncation: str = "document"  # monot5 only
    template: str = MONOT5_TEMPLATE  # monot5 only
    pooling: str | None = None  # bi-encoder only; None: as the model folder says
    normalize: bool | None = None  # bi-encoder only
    similarity: str = "cosine"  # bi-encoder only: cosine | dot
    query_prefix: str = ""  # bi-encoder only
    document_prefix: str = ""  # bi-encoder only
    adapter: str | None = None  # cross-encoder only: a PEFT (LoRA) adapter merged into the model
    adapter_revision: str | None = None
    query_template: str = "{query}"  # cross-encoder only: RankLLaMA reads 'query: {query}'
    document_template: str = "{document}"  # cross-encoder only: RankLLaMA reads 'document: {document}'

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], key: str = "") -> RerankSettings:
        """Strict: a key this family does not know raises, naming ``key`` (``rerank.<system>``)."""
        return decode(cls, entry, key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PairScorer:
    """A model that scores (query, document) pairs: subclasses tokenize and run one batch."""

    model: Any  # the loaded transformers model
    max_length: int
    pad_id: int
    device: Any

    def tokenize(self, pairs: Sequence[tuple[str, str]]) -> list[Features]:
        raise NotImplementedError

    def forward(self, batch: dict[str, Any]) -> Any:
        raise NotImplementedError


class MonoT5Scorer(PairScorer):
    def __init__(
        self,
        resolved: ResolvedModel,
        settings: RerankSettings,
        key: str,
        device: str,
        load_weights: LoadWeights = load_pretrained,
    ) -> None:
        from transformers import AutoTokenizer

        if settings.truncation not in ("document", "template"):
            raise ModelError(f"config key {key}: truncation must be 'document' or 'template', not '{settings.truncation}'")
        self.model = load_weights(loader_for("monot5"), resolved, key, settings.precision, device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolved.folder))
        vocabulary = self.tokenizer.get_vocab()
        missing = [token for token in MONOT5_TOKENS if token not in vocabulary]
        if missing:
            raise ModelError(
                f"config key {key}: the tokenizer of '{resolved.name}' has no token {missing[0]!r}; it is not a monoT5 model"
            )
        self.false_id, self.true_id = (vocabulary[token] for token in MONOT5_TOKENS)
        self.eos_id = int(self.tokenizer.eos_token_id)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.start_id = int(self.model.config.decoder_start_token_id)
        self.max_length = settings.max_length or 512
        self.template = settings.template
        self.keep_template = settings.truncation == "document"
        self.device = input_device(self.model)

    def _ids(self, texts: list[str]) -> list[list[int]]:
        return list(self.tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]) if texts else []

    def tokenize(self, pairs: Sequence[tuple[str, str]]) -> list[Features]:
        room = self.max_length - 1  # the end-of-sequence token comes last
        filled = self._ids([self.template.format(query=query, document=document) for query, document in pairs])
        too_long = [index for index, ids in enumerate(filled) if len(ids) > room]
        if self.keep_template and too_long:
            head, tail = self.template.split("{document}")
            heads = self._ids([head.format(query=pairs[index][0]).rstrip() for index in too_long])
            documents = self._ids([pairs[index][1] for index in too_long])
            tail_ids = self._ids([tail.strip()])[0]
            for index, head_ids, document_ids in zip(too_long, heads, documents, strict=False):
                keep = max(0, room - len(head_ids) - len(tail_ids))
                filled[index] = (head_ids + document_ids[:keep])[: room - len(tail_ids)] + tail_ids
        return [Features([*ids[:room], self.eos_id]) for ids in filled]

    def forward(self, batch: dict[str, Any]) -> Any:
        import torch

        starts = torch.full((batch["input_ids"].size(0), 1), self.start_id, dtype=torch.long, device=batch["input_ids"].device)
        logits = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=starts, use_cache=False
        ).logits
        pair = logits[:, 0, [self.false_id, self.true_id]].float()
        return torch.log_softmax(pair, dim=-1)[:, 1]


class CrossEncoderScorer(PairScorer):
    """Encoder cross-encoders (BERT, MiniLM, ELECTRA) and decoder ones (RankLLaMA: Llama-2 with a
    LoRA adapter, scored at its last token), both as ``AutoModelForSequenceClassification``."""

    def __init__(
        self,
        resolved: ResolvedModel,
        settings: RerankSettings,
        key: str,
        device: str,
        load_weights: LoadWeights = load_pretrained,
    ) -> None:
        from transformers import AutoTokenizer

        adapter_key = key.rsplit(".", 1)[0] + ".adapter"
        adapter = (
            resolve_model(settings.adapter, settings.adapter_revision, adapter_key, marker="adapter_config.json")
            if settings.adapter
            else None
        )
        # An adapter may carry the head the base checkpoint lacks (RankLLaMA's 'score' on Llama-2).
        supplied = adapter_weights(adapter) if adapter else frozenset()
        self.model = load_weights(
            loader_for("cross-encoder"), resolved, key, settings.precision, device, supplied_elsewhere=supplied
        )
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolved.folder))
        if self.tokenizer.pad_token is None:  # Llama has none; the model finds its last token by it
            self.tokenizer.pad_token = self.tokenizer.unk_token or self.tokenizer.eos_token
        if adapter:
            self.model = merge_adapter(self.model, adapter, adapter_key).eval()
        labels = int(self.model.config.num_labels)
        if labels not in (1, 2):
            raise ModelError(
                f"config key {key}: '{resolved.name}' has {labels} labels; a cross-encoder has one logit or two classes"
            )
        self.two_classes = labels == 2
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.model.config.pad_token_id = self.pad_id
        self.max_length = settings.max_length or 512
        self.query_template, self.document_template = settings.query_template, settings.document_template
        self.uses_segments = "token_type_ids" in self.tokenizer.model_input_names
        self.device = input_device(self.model)

    def tokenize(self, pairs: Sequence[tuple[str, str]]) -> list[Features]:
        if not pairs:
            return []
        queries = [self.query_template.format(query=query) for query, _ in pairs]
        documents = [self.document_template.format(document=document) for _, document in pairs]
        encoded = self.tokenizer(
            queries, documents, truncation="longest_first", max_length=self.max_length, return_attention_mask=False
        )
        segments = encoded.get("token_type_ids") if self.uses_segments else None
        return [
            Features(ids, segments[index] if segments is not None else None) for index, ids in enumerate(encoded["input_ids"])
        ]

    def forward(self, batch: dict[str, Any]) -> Any:
        import torch

        logits = self.model(**batch).logits.float()
        return torch.log_softmax(logits, dim=-1)[:, 1] if self.two_classes else logits[:, 0]


@dataclass
class ShardStats:
    """What a rerank job did, for the run's provenance."""

    queries: int = 0
    pairs: int = 0
    seconds: float = 0.0

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0


def _pair_chunks(shard: Sequence[Candidates], size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for position, candidates in enumerate(shard):
        for doc_id in candidates.doc_ids:
            chunk.append((position, doc_id))
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def score_pairs(
    scorer: PairScorer, shard: Sequence[Candidates], store: DocumentStore, budget: TokenBudget, chunk_pairs: int = CHUNK_PAIRS
) -> list[np.ndarray]:
    """Each query's candidate scores, in candidate order; texts are fetched a chunk at a time."""

    def prepare(chunk: list[tuple[int, str]]) -> list[Features]:
        documents = store.fetch([doc_id for _, doc_id in chunk])
        return scorer.tokenize([(shard[position].query, document_text(documents[doc_id])) for position, doc_id in chunk])

    progress = Progress("scoring pairs", sum(len(candidates.doc_ids) for candidates in shard), "pairs")
    parts = []
    for part in pipelined(_pair_chunks(shard, chunk_pairs), prepare, scorer.forward, scorer.pad_id, scorer.device, budget):
        parts.append(part)
        progress.advance(len(part))
    scores = np.concatenate(parts) if parts else np.zeros((0,), dtype=np.float32)
    per_query, offset = [], 0
    for candidates in shard:
        per_query.append(scores[offset : offset + len(candidates.doc_ids)])
        offset += len(candidates.doc_ids)
    return per_query


class BiEncoderReranker:
    """Embeds the shard's queries and its distinct candidate documents once, then scores pairs."""

    def __init__(
        self,
        resolved: ResolvedModel,
        settings: RerankSettings,
        key: str,
        device: str,
        load_weights: LoadWeights = load_pretrained,
    ) -> None:
        if settings.similarity not in ("cosine", "dot"):
            raise ModelError(f"config key {key}.similarity: similarity must be 'cosine' or 'dot', not '{settings.similarity}'")
        encoder_settings = EncoderSettings(settings.pooling, settings.normalize, settings.max_length)
        self.encoder = TextEncoder(resolved, encoder_settings, key, settings.precision, device, load_weights)
        self.settings = settings

    def score(
        self, shard: Sequence[Candidates], store: DocumentStore, budget: TokenBudget, chunk_size: int = 4096
    ) -> list[np.ndarray]:
        distinct = list(dict.fromkeys(doc_id for candidates in shard for doc_id in candidates.doc_ids))
        if not distinct:
            return [np.zeros((0,), dtype=np.float32) for _ in shard]
        queries = self.encoder.encode(
            [self.settings.query_prefix + candidates.query for candidates in shard], budget, what="queries"
        )
        chunks = (distinct[start : start + chunk_size] for start in range(0, len(distinct), chunk_size))

        def texts_of(doc_ids: list[str]) -> list[str]:
            documents = store.fetch(doc_ids)
            return [self.settings.document_prefix + document_text(documents[doc_id]) for doc_id in doc_ids]

        progress = Progress("encoding candidate documents", len(distinct), "texts")
        parts = []
        for part in self.encoder.encode_chunks(chunks, budget, texts_of):
            parts.append(part)
            progress.advance(len(part))
        vectors = np.concatenate(parts)
        if self.settings.similarity == "cosine" and not self.encoder.normalize:
            queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        row = {doc_id: index for index, doc_id in enumerate(distinct)}
        return [
            vectors[[row[doc_id] for doc_id in candidates.doc_ids]] @ queries[position]
            for position, candidates in enumerate(shard)
        ]


SCORERS: dict[str, Callable[[ResolvedModel, RerankSettings, str, str, LoadWeights], PairScorer]] = {
    "monot5": MonoT5Scorer,
    "cross-encoder": CrossEncoderScorer,
}


class Reranker:
    """A configured reranker, loaded once per job."""

    def __init__(self, settings: RerankSettings, key: str, device: str, load_weights: LoadWeights = load_pretrained) -> None:
        """``load_weights``: how the model gets its weights (a benchmark passes random weights of the same shape)."""
        if settings.kind not in KINDS:
            raise ModelError(f"config key {key}.kind: unknown kind '{settings.kind}' ({', '.join(KINDS)})")
        self.settings = settings
        self.resolved = resolve_model(settings.model, settings.revision, f"{key}.model")
        self.device = device
        self.model: BiEncoderReranker | PairScorer
        if settings.kind == "bi-encoder":
            # the encoder names '<key>.model' itself
            self.model = BiEncoderReranker(self.resolved, settings, key, device, load_weights)
        else:
            self.model = SCORERS[settings.kind](self.resolved, settings, f"{key}.model", device, load_weights)

    @property
    def parameters(self) -> int:
        """Parameters of the loaded weights (the report's size axis)."""
        module = self.model.encoder.model if isinstance(self.model, BiEncoderReranker) else self.model.model
        return int(sum(parameter.numel() for parameter in module.parameters()))

    @property
    def max_length(self) -> int:
        return self.model.encoder.max_length if isinstance(self.model, BiEncoderReranker) else self.model.max_length

    def rerank(
        self, shard: Sequence[Candidates], store: DocumentStore, budget: TokenBudget
    ) -> tuple[list[list[tuple[str, float]]], ShardStats]:
        """Scores for every query's candidates (a query without candidates gets none)."""
        started = time.perf_counter()
        if isinstance(self.model, BiEncoderReranker):
            scores = self.model.score(shard, store, budget)
        else:
            scores = score_pairs(self.model, shard, store, budget)
        stats = ShardStats(queries=len(shard), pairs=sum(len(c.doc_ids) for c in shard), seconds=time.perf_counter() - started)
        hits = [
            list(zip(candidates.doc_ids, (float(value) for value in values), strict=False))
            for candidates, values in zip(shard, scores, strict=False)
        ]
        return hits, stats
