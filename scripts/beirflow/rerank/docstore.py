"""A document store: texts by id from one SQLite file, in memory bounded by the request.

A rerank job needs the texts of its shard's candidates only. The store is built once per dataset
from ``corpus.jsonl`` (streamed, a transaction per 10,000 documents) and read by id, a few hundred
ids per query, so a job's memory is its chunk of candidates, not the corpus: MS MARCO's 8.8M
passages make a file of about 4 GB on disk, and a lookup touches only the B-tree pages it needs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

from beirflow.data.beir import Document, iter_corpus
from beirflow.runs.checks import check_document_store
from beirflow.workflow.atomic import atomic_path
from beirflow.workflow.errors import DataError, rebuild_hint
from beirflow.workflow.integrity import Writer, verify
from beirflow.workflow.progress import Progress

_BATCH = 10_000
_LOOKUP = 900  # ids per query; under SQLite's oldest limit of 999 variables


def _batches(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def build_document_store(corpus: Path, output: Path, expected: int | None = None, writer: Writer | None = None) -> int:
    """Write every document of ``corpus`` into a new SQLite file at ``output``; returns the count.

    The store is published only once it reads back with every document (``expected``, the
    validated count, else the documents read)."""
    count = 0

    def holds_every_document(written: Path) -> dict[str, int]:
        return check_document_store(written, count if expected is None else expected)

    writer = writer or Writer("document_store", corpus.parent.name)
    with atomic_path(output, check=holds_every_document, writer=writer) as temporary:
        connection = sqlite3.connect(temporary)
        try:
            connection.execute("PRAGMA journal_mode = OFF")
            connection.execute("PRAGMA synchronous = OFF")
            connection.execute("CREATE TABLE documents (id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL)")
            progress = Progress("storing documents", expected, "documents") if expected else None
            for batch in _batches((document for _, document in iter_corpus(corpus)), _BATCH):
                with connection:
                    connection.executemany("INSERT INTO documents VALUES (?, ?, ?)", ((d.doc_id, d.title, d.text) for d in batch))
                count += len(batch)
                if progress:
                    progress.advance(len(batch))
            connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            with connection:
                connection.executemany("INSERT INTO meta VALUES (?, ?)", [("documents", str(count)), ("source", str(corpus))])
        finally:
            connection.close()
    return count


class DocumentStore:
    """Read-only access to a store written by :func:`build_document_store`, checked against its record
    (its size by every job, its bytes once per node) and opened before the first lookup: a store that
    SQLite cannot read names its path and its rebuild."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise DataError(path, "document store not found")
        counts = verify(path, once_per_node=True)
        self.path = path
        # The connection is used by one thread at a time (the tokenizing worker), not only its creator's.
        self._connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        stored = self._query("SELECT value FROM meta WHERE key = 'documents'")
        if not stored or ("documents" in counts and int(stored[0][0]) != counts["documents"]):
            raise DataError(path, f"the document store does not hold the corpus's count of documents; {rebuild_hint(path)}")

    def _query(self, sql: str, parameters: Sequence[str] = ()) -> list[tuple]:
        try:
            return self._connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise DataError(self.path, f"the document store cannot be read ({error}); {rebuild_hint(self.path)}") from None

    def fetch(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        """The documents with these ids; an id the corpus lacks is an error naming the store."""
        wanted = list(dict.fromkeys(doc_ids))
        found: dict[str, Document] = {}
        for start in range(0, len(wanted), _LOOKUP):
            part = wanted[start : start + _LOOKUP]
            rows = self._query(f"SELECT id, title, text FROM documents WHERE id IN ({','.join('?' * len(part))})", part)
            for doc_id, title, text in rows:
                found[doc_id] = Document(doc_id, title, text)
        missing = [doc_id for doc_id in wanted if doc_id not in found]
        if missing:
            raise DataError(self.path, f"{len(missing)} requested documents are not in the corpus, e.g. '{missing[0]}'")
        return found

    def close(self) -> None:
        self._connection.close()
