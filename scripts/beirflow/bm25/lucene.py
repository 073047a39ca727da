"""BM25 with Pyserini (Lucene), run as Pyserini's BEIR regressions run it.

* ``flat``: Anserini's ``BeirFlatCollection``, title and text joined by a space in ``contents``.
* ``multifield``: ``BeirMultifieldCollection`` with ``title`` indexed as its own field, searched
  with ``contents=1.0 title=1.0``.

Indexes store positions, document vectors and raw text, as the regressions build them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beirflow.data.beir import Document
from beirflow.workflow.jvm import start_jvm
from beirflow.workflow.progress import Progress

log = logging.getLogger(__name__)

COLLECTIONS = {"flat": "BeirFlatCollection", "multifield": "BeirMultifieldCollection"}


@dataclass(frozen=True)
class Bm25Params:
    """One BM25 system: which index, the BM25 parameters and the depth."""

    fields: str = "flat"
    k1: float = 0.9
    b: float = 0.4
    hits: int = 1000
    remove_query: bool = True
    field_weights: Mapping[str, float] | None = None
    query_max_chars: int | None = None  # the paper cut queries to 1024 characters for BM25

    def query_text(self, text: str) -> str:
        return text if self.query_max_chars is None else text[: self.query_max_chars]

    def search_fields(self) -> dict[str, float]:
        if self.fields == "flat":
            return {}
        return dict(self.field_weights or {"contents": 1.0, "title": 1.0})


def indexing_memory(memory_mb: int | None) -> tuple[int | None, int]:
    """JVM heap and Lucene RAM buffer for a job allowed ``memory_mb`` (None: JVM default heap).

    Anserini's default 4 GB buffer exceeds the default heap of a small cluster job; the buffer
    only changes how often segments flush, never the index statistics or the scores.
    """
    if memory_mb is None:
        return None, 2048
    heap = max(512, memory_mb * 3 // 4)  # the rest: JVM overhead, Python, page cache
    return heap, min(4096, heap // 2)


def build_index(corpus: Path, index_dir: Path, fields: str, threads: int = 1, memory_mb: int | None = None) -> None:
    """Index a BEIR ``corpus.jsonl`` into ``index_dir`` with Anserini's BEIR collection classes."""
    if fields not in COLLECTIONS:
        raise ValueError(f"unknown BM25 index '{fields}': one of {sorted(COLLECTIONS)}")
    heap_mb, buffer_mb = indexing_memory(memory_mb)
    start_jvm(max_heap_mb=heap_mb)
    from jnius import autoclass

    # The collection reads every file in its input folder, and a BEIR folder also holds
    # queries.jsonl: give Anserini a folder with the corpus alone.
    with tempfile.TemporaryDirectory(prefix="beirflow-corpus-") as input_dir:
        os.symlink(corpus.resolve(), Path(input_dir) / "corpus.jsonl")
        args = [
            "-collection", COLLECTIONS[fields],
            "-generator", "DefaultLuceneDocumentGenerator",
            "-input", input_dir,
            "-index", str(index_dir),
            "-threads", str(threads),
            "-storePositions", "-storeDocvectors", "-storeRaw",
            "-memoryBuffer", str(buffer_mb),
        ]  # fmt: skip
        if fields == "multifield":
            args += ["-fields", "title"]
        log.info(
            "indexing %s (%s) into %s with %d threads, heap %s MB, buffer %d MB",
            corpus,
            fields,
            index_dir,
            threads,
            heap_mb or "default",
            buffer_mb,
        )
        autoclass("io.anserini.index.IndexCollection").main(args)


# Java's String.trim(): what Anserini strips before it calls a document empty and skips it.
_JAVA_TRIMMED = "".join(chr(code) for code in range(33))


def indexable_documents(corpus: Path, fields: str) -> int:
    """Documents Anserini indexes: it skips one whose indexed text is empty after trimming, which
    for ``flat`` is title and text together and for ``multifield`` the text alone."""
    from beirflow.data.beir import iter_corpus

    def text(document: Document) -> str:
        return f"{document.title} {document.text}" if fields == "flat" else document.text

    return sum(1 for _, document in iter_corpus(corpus) if text(document).strip(_JAVA_TRIMMED))


def index_document_count(index_dir: Path) -> int:
    """The index's document count, as Pyserini's ``LuceneIndexReader(index_dir).stats()["documents"]``
    reads it (the same Anserini calls; importing that module imports pandas and Pyserini's prebuilt
    index tables: 0.9 of an index job's 2.9 CPU-seconds on the sample)."""
    start_jvm()
    from jnius import autoclass

    utils = autoclass("io.anserini.index.IndexReaderUtils")
    reader = utils.getReader(str(index_dir))
    try:
        return int(utils.getIndexStats(reader).get("documents"))
    finally:
        reader.close()


def search(
    index_dir: Path,
    queries: Mapping[str, str],
    params: Bm25Params,
    threads: int = 1,
    batch_size: int = 100,
) -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """Yield ``(query_id, hits)`` in query order, ``hits`` as Lucene ranks them.

    Batches stay small: each hit Pyserini returns carries its stored document, so a batch of
    1000 queries x 1000 hits holds gigabytes on the JVM heap.

    With ``remove_query`` a hit whose id equals the query id is dropped after retrieval,
    as Pyserini's ``--remove-query`` does (it matters for ArguAna and Quora). With
    ``query_max_chars`` each query is cut before it is searched, as the paper did (its
    rerankers read the whole query from the prepared queries).
    """
    searcher = _anserini_searcher(index_dir, params)
    fields = params.search_fields()
    query_ids = list(queries)
    progress = Progress("searching", len(query_ids), "queries")
    for start in range(0, len(query_ids), batch_size):
        batch = query_ids[start : start + batch_size]
        results = _batch_search(searcher, [params.query_text(queries[q]) for q in batch], batch, params.hits, threads, fields)
        for query_id in batch:
            hits = [(hit.docid.strip(), float(hit.score)) for hit in results.get(query_id, [])]
            if params.remove_query:
                hits = [hit for hit in hits if hit[0] != query_id]
            yield query_id, hits
        progress.advance(len(batch))


# Pyserini's LuceneSearcher is a thin wrapper of Anserini's SimpleSearcher, but importing it imports
# pyserini.encode (torch and transformers): 10 s of every search job for nothing. The two functions below
# make the calls LuceneSearcher.__init__, set_bm25 and batch_search make (Pyserini 1.6.0); a test checks
# that the hits equal LuceneSearcher's.
def _anserini_searcher(index_dir: Path, params: Bm25Params) -> Any:
    start_jvm()
    from jnius import autoclass

    searcher = autoclass("io.anserini.search.SimpleSearcher")(str(index_dir))
    searcher.set_bm25(float(params.k1), float(params.b))
    return searcher


def _batch_search(
    searcher: Any, texts: list[str], query_ids: list[str], hits: int, threads: int, fields: dict[str, float]
) -> dict[str, Any]:
    from jnius import autoclass

    java_texts, java_ids, java_fields = (
        autoclass(name)() for name in ("java.util.ArrayList", "java.util.ArrayList", "java.util.HashMap")
    )
    for text in texts:
        java_texts.add(text)
    for query_id in query_ids:
        java_ids.add(query_id)
    java_float = autoclass("java.lang.Float")
    for field, boost in fields.items():
        java_fields.put(field, java_float(boost))
    if fields:
        results = searcher.batch_search_fields(java_texts, java_ids, int(hits), int(threads), java_fields)
    else:
        results = searcher.batch_search(java_texts, java_ids, int(hits), int(threads))
    return {entry.getKey(): entry.getValue() for entry in results.entrySet().toArray()}
