"""CQADupStack's 12 forums as one dataset: one corpus, one query set, one qrels file.

The paper ran CQADupStack this way (one index, one query set); BEIR averages the 12 forums.
Ids are prefixed with the forum (``android/1234``) because forums number their posts
independently; a query and a document of the same post keep equal ids, so dropping
self-hits behaves as in a forum of its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from beirflow.data.beir import BeirFiles, iter_jsonl, read_qrels_tsv
from beirflow.workflow.atomic import atomic_write


def merged_id(forum: str, item_id: str) -> str:
    return f"{forum}/{item_id}"


def _merge_jsonl(sources: Sequence[tuple[str, Path]], output: Path) -> int:
    count = 0
    with atomic_write(output) as handle:
        for forum, path in sources:
            for _, record in iter_jsonl(path):
                record["_id"] = merged_id(forum, str(record["_id"]))
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    return count


def merge_forums(forums: Sequence[tuple[str, BeirFiles]], output: BeirFiles) -> dict[str, int]:
    """Write the merged corpus, queries and qrels of ``output.split``; returns the counts."""
    output.qrels.parent.mkdir(parents=True, exist_ok=True)
    documents = _merge_jsonl([(forum, files.corpus) for forum, files in forums], output.corpus)
    queries = _merge_jsonl([(forum, files.queries) for forum, files in forums], output.queries)
    judgements = 0
    with atomic_write(output.qrels) as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for forum, files in forums:
            qrels, _ = read_qrels_tsv(files.qrels)
            for query_id, judged in qrels.items():
                for doc_id, relevance in judged.items():
                    handle.write(f"{merged_id(forum, query_id)}\t{merged_id(forum, doc_id)}\t{relevance}\n")
                    judgements += 1
    return {"documents": documents, "queries": queries, "judgements": judgements}
