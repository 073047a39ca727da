"""A run as columns, for evaluating millions of hits: the same content as :func:`beirflow.runs.trec.read_run`,
read by Arrow's CSV reader.

Only the evaluation and the fusion import this module (and so Arrow); every other stage reads runs
line by line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beirflow.runs.trec import ordered_hits, read_run


@dataclass(frozen=True)
class RunTable:
    """A run as columns, one row per hit in file order: what evaluating millions of hits needs."""

    query_ids: list[str]  # distinct, in order of first appearance
    query_rows: np.ndarray  # per hit, its query's place in query_ids
    doc_ids: list[str]  # distinct
    doc_rows: np.ndarray  # per hit, its document's place in doc_ids
    scores: np.ndarray  # per hit, float64
    ranks: np.ndarray  # per hit, its rank as written (int64)

    @classmethod
    def from_dict(cls, run: Mapping[str, Mapping[str, float]]) -> RunTable:
        doc_number: dict[str, int] = {}
        query_rows = [position for position, hits in enumerate(run.values()) for _ in hits]
        doc_rows = [doc_number.setdefault(doc_id, len(doc_number)) for hits in run.values() for doc_id in hits]
        scores = [score for hits in run.values() for score in hits.values()]
        ranks = [rank for hits in run.values() for rank in _ranks_in_run_order(hits)]
        return cls(
            list(run),
            np.array(query_rows, dtype=np.int64),
            list(doc_number),
            np.array(doc_rows, dtype=np.int64),
            np.array(scores, dtype=np.float64),
            np.array(ranks, dtype=np.int64),
        )


def _ranks_in_run_order(hits: Mapping[str, float]) -> list[int]:
    """Each hit's rank were the hits written as beirflow writes runs (:func:`beirflow.runs.trec.run_order`)."""
    ranks = {doc_id: rank for rank, (doc_id, _) in enumerate(ordered_hits(hits.items()), start=1)}
    return [ranks[doc_id] for doc_id in hits]


def read_run_table(path: Path) -> RunTable:
    """:func:`read_run`'s content as columns, parsed by Arrow's CSV reader: a run of 7 million hits in
    about half a second against 4 s line by line. A file Arrow cannot read as beirflow writes runs (six
    fields between single spaces, a numeric score), or one with a hit twice, is read line by line by
    :func:`read_run` instead, whose errors name the line."""
    import pyarrow as pa
    import pyarrow.csv as csv

    names = ["query", "q0", "doc", "rank", "score", "tag"]
    if not path.is_file() or path.stat().st_size == 0:
        return RunTable.from_dict(read_run(path))
    try:
        table = csv.read_csv(
            path,
            read_options=csv.ReadOptions(column_names=names),
            parse_options=csv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False, escape_char=False),
            convert_options=csv.ConvertOptions(
                include_columns=["query", "doc", "rank", "score"],
                column_types={"query": pa.string(), "doc": pa.string(), "rank": pa.int64(), "score": pa.float64()},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
            ),
        )
    except pa.ArrowInvalid:
        return RunTable.from_dict(read_run(path))
    queries = table.column("query").combine_chunks().dictionary_encode()
    docs = table.column("doc").combine_chunks().dictionary_encode()
    query_rows = queries.indices.to_numpy().astype(np.int64)
    doc_rows = docs.indices.to_numpy().astype(np.int64)
    scores = table.column("score").to_numpy()
    ranks = table.column("rank").to_numpy().astype(np.int64)
    if len(query_rows) and (np.isnan(scores).any() or _has_repeated_hits(query_rows, doc_rows, len(docs.dictionary))):
        return RunTable.from_dict(read_run(path))  # names the repeated hit's line
    return RunTable(queries.dictionary.to_pylist(), query_rows, docs.dictionary.to_pylist(), doc_rows, scores, ranks)


def _has_repeated_hits(query_rows: np.ndarray, doc_rows: np.ndarray, documents: int) -> bool:
    pairs = np.sort(query_rows * documents + doc_rows)
    return bool(np.any(pairs[1:] == pairs[:-1]))
