"""Learned sparse retrieval with SPLADE (Formal et al.): term weights from a masked language model's head,
``log(1 + relu(logits))`` max-pooled over a text's tokens, quantized as Pyserini quantizes them, searched
in an Anserini impact index.

The weights equal Pyserini's ``SpladeDocumentEncoder``/``SpladeQueryEncoder`` (pyserini/encode/_splade.py,
1.6.0) on the same model and texts, and the search is Pyserini's ``LuceneImpactSearcher`` over the index
Anserini builds from them (tests/test_splade.py runs Pyserini's own path beside this one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from beirflow.workflow.settings import decode

# Pyserini's quantization: a weight w becomes round(w / 5 * 256), for documents and queries alike.
WEIGHT_RANGE = 5.0
QUANT_RANGE = 256

# Keys of a splade entry that change no result, beside the common ones (beirflow.workflow.settings.OPERATIONAL_KEYS).
OPERATIONAL_KEYS: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpladeSettings:
    """The keys of a splade system's config entry that change its run (the rule params)."""

    model: str
    revision: str | None = None
    precision: str = "bf16"
    document_max_length: int = 512  # Pyserini's SPLADE document encoding reads 512 tokens
    query_max_length: int = 256
    hits: int = 1000
    remove_query: bool = True  # a hit whose id is the query's own is dropped, as for BM25

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], key: str = "") -> SpladeSettings:
        return decode(cls, entry, key, OPERATIONAL_KEYS)

    def encoder_identity(self) -> dict[str, Any]:
        """What the documents' vectors (and their index) depend on; the query side and the search do not."""
        values = asdict(self)
        return {name: values[name] for name in ("model", "revision", "precision", "document_max_length")}


def quantize(weight: float) -> int:
    return round(weight / WEIGHT_RANGE * QUANT_RANGE)


class SpladeEncoder:
    """A SPLADE model and its tokenizer on one device."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.terms = {index: token for token, index in tokenizer.vocab.items()}

    @classmethod
    def load(cls, resolved: Any, key: str, precision: str, device: str, load_weights: Any = None) -> SpladeEncoder:
        """``load_weights``: how the model gets its weights (a benchmark passes random weights of the same shape)."""
        from transformers import AutoTokenizer

        from beirflow.models.loading import load_pretrained, loader_for

        load_weights = load_weights or load_pretrained
        tokenizer = AutoTokenizer.from_pretrained(str(resolved.folder), clean_up_tokenization_spaces=True)
        return cls(load_weights(loader_for("splade"), resolved, key, precision, device), tokenizer)

    def weights(self, texts: Sequence[str], max_length: int) -> list[dict[str, int]]:
        """One batch of texts, padded to its longest: each text's quantized weight per term (zeros kept, as
        Pyserini keeps them)."""
        import torch

        inputs = self.tokenizer(
            list(texts),
            max_length=max_length,
            truncation=True,
            padding="longest",
            return_attention_mask=True,
            return_token_type_ids=False,
            return_tensors="pt",
        ).to(self.model.device)
        with torch.inference_mode():
            logits = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
            pooled, _ = torch.max(torch.log(1 + torch.relu(logits)) * inputs["attention_mask"].unsqueeze(-1), dim=1)
        rows = pooled.float().cpu().numpy()
        return [{self.terms[int(column)]: quantize(float(row[column])) for column in np.nonzero(row)[0]} for row in rows]

    def documents(self, texts: Sequence[str], max_length: int, batch_size: int) -> Iterator[dict[str, int]]:
        for start in range(0, len(texts), batch_size):
            yield from self.weights(texts[start : start + batch_size], max_length)

    def query(self, text: str, max_length: int) -> dict[str, int]:
        """A query alone, unpadded, as Pyserini's query encoder reads it."""
        return self.weights([text], max_length)[0]


def write_vectors(handle: IO[str], ids: Iterable[str], vectors: Iterable[Mapping[str, int]]) -> int:
    """Anserini's JsonVectorCollection, one document a line; the contents are left empty (an impact index
    scores the vector alone)."""
    count = 0
    for doc_id, vector in zip(ids, vectors, strict=True):
        handle.write(json.dumps({"id": doc_id, "contents": "", "vector": dict(vector)}, ensure_ascii=False) + "\n")
        count += 1
    return count


def check_vectors(path: Path) -> dict[str, int]:
    """A vectors file read back: every line a document with integer weights; its counts."""
    from beirflow.workflow.errors import DataError

    documents = terms = 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            record = json.loads(line)
            vector = record.get("vector")
            if not isinstance(record.get("id"), str) or not isinstance(vector, dict):
                raise DataError(path, f"line {number} is not a document with a vector")
            if not all(isinstance(weight, int) for weight in vector.values()):
                raise DataError(path, f"line {number} ({record['id']}) holds a weight that is not an integer")
            documents += 1
            terms += len(vector)
    if documents == 0:
        raise DataError(path, "holds no document")
    return {"documents": documents, "terms": terms}


def build_impact_index(vector_files: Sequence[Path], index_dir: Path, threads: int = 1) -> None:
    """Anserini's impact index of the vectors (``-impact -pretokenized``), as Pyserini's
    ``python -m pyserini.index.lucene --collection JsonVectorCollection --impact --pretokenized`` builds it."""
    import os
    import tempfile

    from beirflow.workflow.jvm import start_jvm

    start_jvm()
    from jnius import autoclass

    with tempfile.TemporaryDirectory(prefix="beirflow-vectors-") as input_dir:
        for number, path in enumerate(vector_files):
            os.symlink(path.resolve(), Path(input_dir) / f"{number:06d}.jsonl")
        args = [
            "-collection", "JsonVectorCollection",
            "-generator", "DefaultLuceneDocumentGenerator",
            "-input", input_dir,
            "-index", str(index_dir),
            "-threads", str(threads),
            "-impact", "-pretokenized",
        ]  # fmt: skip
        autoclass("io.anserini.index.IndexCollection").main(args)


class EncodedQueries:
    """Query weights computed beforehand, handed to Pyserini's LuceneImpactSearcher as its query encoder."""

    def __init__(self, weights: Mapping[str, Mapping[str, int]]) -> None:
        self._weights = weights

    def encode(self, text: str, **_: Any) -> Mapping[str, int]:
        return self._weights[text]


def search(
    index_dir: Path,
    queries: Mapping[str, str],
    weights: Mapping[str, Mapping[str, int]],
    hits: int,
    remove_query: bool,
    threads: int = 1,
) -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """Yield ``(query_id, hits)`` in query order, as Pyserini's impact searcher ranks them; with ``remove_query``
    a hit whose id is the query's own is dropped after retrieval, as for BM25 (beirflow.bm25.lucene.search)."""
    from beirflow.workflow.jvm import start_jvm

    start_jvm()
    from pyserini.search.lucene import LuceneImpactSearcher

    by_text = {queries[query_id]: weights[query_id] for query_id in queries}
    searcher = LuceneImpactSearcher(str(index_dir), EncodedQueries(by_text))
    query_ids = list(queries)
    for start in range(0, len(query_ids), 100):
        batch = query_ids[start : start + 100]
        results = searcher.batch_search([queries[q] for q in batch], batch, k=hits, threads=threads)
        for query_id in batch:
            found = [(hit.docid.strip(), float(hit.score)) for hit in results.get(query_id, [])]
            if remove_query:
                found = [hit for hit in found if hit[0] != query_id]
            yield query_id, found
