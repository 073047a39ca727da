"""Checks an output passes before it is published under its final name (see :mod:`beirflow.workflow.atomic`).

Writing atomically is not enough: a tool that fails without failing (Anserini logs ``No space left
on device`` and returns) leaves a complete-looking but broken output. Each check reads the
temporary output back the way its consumer will and compares it with what the job was asked for.
Standard library only, so that every environment can import it (embeddings are checked in
:mod:`beirflow.dense.search`, which has numpy).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from beirflow.runs.trec import RUN_LAYOUT, QueryOrder, iter_rows
from beirflow.workflow.errors import DataError


def validated_document_count(report: Path) -> int:
    """The corpus's document count as ``prepare_dataset`` validated it (``report.json``)."""
    try:
        return int(json.loads(report.read_text(encoding="utf-8"))["documents"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(
            report,
            f"no document count in the validation report ({type(error).__name__}: {error}); rerun prepare_dataset (snakemake -R prepare_dataset)",
        ) from None


def check_run_file(path: Path) -> dict[str, int]:
    """Every row has six fields; a query's hits are contiguous, ranked 1, 2, ... as written, with finite
    scores that never rise with the rank (:func:`beirflow.runs.trec.run_order`). Returns the queries and hits,
    for the run's record."""
    order = QueryOrder(path)
    queries = hits = expected_rank = 0
    previous = math.inf
    for number, (query_id, _, _, rank, score, _) in iter_rows(path, RUN_LAYOUT):
        if order.starts(query_id, number):
            queries, expected_rank, previous = queries + 1, 1, math.inf
        try:
            rank_value, score_value = int(rank), float(score)
        except ValueError:
            raise DataError(path, f"rank '{rank}' or score '{score}' is not a number", number) from None
        if not math.isfinite(score_value):
            raise DataError(path, f"score '{score}' of query '{query_id}' is not a finite number", number)
        if rank_value != expected_rank:
            raise DataError(path, f"query '{query_id}' has rank {rank_value} where its hits so far make {expected_rank}", number)
        if score_value > previous:
            raise DataError(path, f"query '{query_id}': rank {rank_value} scores {score} above rank {rank_value - 1}", number)
        previous, expected_rank, hits = score_value, expected_rank + 1, hits + 1
    return {"queries": queries, "hits": hits}


def check_document_store(path: Path, expected: int) -> dict[str, int]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        stored = int(connection.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        integrity = connection.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as error:
        raise DataError(path, f"the document store cannot be read: {error}") from None
    finally:
        connection.close()
    if integrity != "ok":
        raise DataError(path, f"the document store is damaged: {integrity}")
    if stored != expected:
        raise DataError(path, f"the document store holds {stored:,} documents, the corpus {expected:,}")
    return {"documents": stored}


def check_lucene_index(path: Path, expected: int) -> dict[str, int]:
    """The index opens (it has a commit, ``segments_N``) and holds ``expected`` documents."""
    from beirflow.bm25.lucene import index_document_count

    try:
        indexed = index_document_count(path)
    except Exception as error:  # pyjnius raises JavaException for Lucene's IndexNotFoundException and I/O errors
        raise DataError(
            path,
            f"the Lucene index cannot be opened ({type(error).__name__}: {error}); Anserini's log above says why (a full disk?)",
        ) from None
    if indexed != expected:
        raise DataError(
            path,
            f"the Lucene index holds {indexed:,} documents, the corpus {expected:,} indexable ones; Anserini's log above says why",
        )
    return {"documents": indexed}
