"""Candidates: a first stage's top ``depth`` hits, split by query shard, for the rerank jobs.

One folder per dataset, first stage and depth, one file per query shard, shared by every reranker
that reranks that first stage at that depth. A line holds a query of the shard (in shard order),
its text and its candidate document ids in the first stage's order; texts of documents are not
copied here, the rerank job reads them from the document store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from beirflow.data.beir import iter_jsonl
from beirflow.data.shards import MANIFEST, shard_ids, shard_path, verified_shard
from beirflow.runs.trec import best_hits, iter_query_hits
from beirflow.workflow.atomic import atomic_path
from beirflow.workflow.errors import DataError, rebuild_hint
from beirflow.workflow.integrity import Writer, verify, verify_member


@dataclass(frozen=True)
class Candidates:
    query_id: str
    query: str
    doc_ids: list[str]


def top_hits(hits: dict[str, float], depth: int) -> list[str]:
    """The ``depth`` best document ids, score descending then docid ascending (the run files' order)."""
    return [doc_id for doc_id, _ in best_hits(hits, depth)]


def write_candidates(
    run_path: Path, query_shards: Path, output_dir: Path, depth: int, writer: Writer | None = None
) -> dict[str, int]:
    """Split ``run_path``'s top ``depth`` by the query shards in ``query_shards``; returns counts.

    The run is read a query at a time and only each query's top ``depth`` kept: a first stage of
    MS MARCO's 7,000 queries x 1,000 hits held whole took 835 MB (bench/scaling.py)."""
    verify(run_path)
    run = {query_id: top_hits(hits, depth) for query_id, hits in iter_query_hits(run_path)}
    manifest = json.loads((query_shards / MANIFEST).read_text(encoding="utf-8"))
    shards = shard_ids(manifest["shards"])
    seen: set[str] = set()
    pairs = without_hits = 0
    members: dict[str, dict[str, int]] = {}
    writer = writer or Writer("rerank_candidates", output_dir.parent.parent.parent.name, shard=f"top{depth}")
    with atomic_path(output_dir, check=lambda _: {**counts, "members": members}, writer=writer) as temporary:
        temporary.mkdir(parents=True)
        for shard in shards:
            lines = []
            shard_pairs = 0
            verified_shard(shard_path(query_shards, shard))
            for _, record in iter_jsonl(shard_path(query_shards, shard)):
                query_id = str(record["_id"])
                seen.add(query_id)
                doc_ids = run.get(query_id, [])
                shard_pairs += len(doc_ids)
                without_hits += not doc_ids
                lines.append(
                    json.dumps({"query_id": query_id, "query": record["text"], "doc_ids": doc_ids}, ensure_ascii=False) + "\n"
                )
            (temporary / f"{shard}.jsonl").write_text("".join(lines), encoding="utf-8")
            members[f"{shard}.jsonl"] = {"queries": len(lines), "pairs": shard_pairs}
            pairs += shard_pairs
        unknown = [query_id for query_id in run if query_id not in seen]
        if unknown:
            raise DataError(
                run_path,
                f"query '{unknown[0]}' ({len(unknown)} in all) is in the run but not in the queries file {manifest['source']}",
            )
        counts = {
            "shards": len(shards),
            "queries": len(seen),
            "pairs": pairs,
            "queries_without_hits": without_hits,
            "depth": depth,
        }
        (temporary / MANIFEST).write_text(json.dumps({"run": str(run_path), **counts}, indent=2) + "\n", encoding="utf-8")
    return counts


def read_candidates(path: Path) -> list[Candidates]:
    """A query shard's candidates, checked against its folder's record first (the shard's bytes, the
    queries and pairs the manifest gives it); a malformed line names the file, the line and the rule that
    rebuilds it."""
    expected = verify_member(path.parent, path.name)
    shard = []
    try:
        for number, record in iter_jsonl(path):
            query_id, query, doc_ids = record.get("query_id"), record.get("query"), record.get("doc_ids")
            if (
                not isinstance(query_id, str)
                or not isinstance(query, str)
                or not isinstance(doc_ids, list)
                or not all(isinstance(doc_id, str) for doc_id in doc_ids)
            ):
                raise DataError(path, "expected {query_id: str, query: str, doc_ids: [str]}", number)
            shard.append(Candidates(query_id, query, doc_ids))
    except DataError as error:
        raise DataError(error.path, f"{error.reason}; {rebuild_hint(path.parent)}", error.line) from None
    found = {"queries": len(shard), "pairs": sum(len(candidates.doc_ids) for candidates in shard)}
    if any(found[key] != expected.get(key) for key in found):
        raise DataError(path, f"holds {found}, its folder's manifest {expected}; {rebuild_hint(path.parent)}")
    return shard
