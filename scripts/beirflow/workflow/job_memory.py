"""The memory (MB) a CPU job over a whole corpus asks for, from what ``bench/scaling.py`` measured.

Each rule's ask is a floor plus an amount per million documents, well above its peak measured at
1M documents (docs/performance.md): about five times for the Python jobs, two and a half for
Anserini's indexer, whose JVM heap is sized from the ask. A retry after an out-of-memory kill asks
for the attempt's multiple, as every rule does.
"""

from __future__ import annotations

# rule: (MB whatever the corpus, MB per million documents), with the peak measured at 1M documents
CORPUS_JOB_MEMORY = {
    "prepare_dataset": (1000, 250),  # 115 MB: the ids, to check the qrels against
    "document_store": (1000, 250),  # 160 MB: the ids, to refuse a duplicate
    "bm25_index": (2048, 1000),  # 1,213 MB: Anserini's heap and Lucene's buffer
}
SHARD_CORPUS_MB = 1000  # 16 MB at every size: shards are written line by line
CANDIDATES_MB = 1000  # 68 MB for 7,000 queries x 1,000 hits: one query's hits at a time


def corpus_job_memory_mb(rule: str, documents: int, attempt: int = 1) -> int:
    floor, per_million = CORPUS_JOB_MEMORY[rule]
    return (floor + per_million * documents // 1_000_000) * attempt
