"""Read and validate datasets in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

Every reader checks what it reads and raises :class:`DataError` naming the file and line.
Lines may end in CRLF (several BEIR zips have them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from beirflow.runs.trec import iter_rows
from beirflow.workflow.errors import DataError

Qrels = dict[str, dict[str, int]]
QRELS_HEADER_IDS = {"query-id", "query_id", "qid"}  # first column of a BEIR qrels header


@dataclass(frozen=True)
class BeirFiles:
    """Where the files of one dataset in BEIR layout are."""

    folder: Path
    split: str

    @property
    def corpus(self) -> Path:
        return self.folder / "corpus.jsonl"

    @property
    def queries(self) -> Path:
        return self.folder / "queries.jsonl"

    @property
    def qrels(self) -> Path:
        return self.folder / "qrels" / f"{self.split}.tsv"


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str


def document_text(document: Document) -> str:
    """What a model reads of a document: title and text joined by a space, as BEIR and pygaggle join them."""
    return f"{document.title} {document.text}" if document.title else document.text


@dataclass
class ValidationReport:
    """What validating a dataset found; written beside the prepared files."""

    dataset: str
    split: str
    documents: int = 0
    queries_in_file: int = 0
    judged_queries: int = 0
    judgements: int = 0
    relevant_judgements: int = 0
    judged_documents_missing_from_corpus: int = 0
    missing_document_examples: list[str] = field(default_factory=list)
    unjudged_queries_without_text: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; malformed JSON names its line."""
    if not path.is_file():
        raise DataError(path, "file not found")
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(path, f"malformed JSON: {error.msg} (column {error.colno})", number) from None
            if not isinstance(record, dict):
                raise DataError(path, "expected a JSON object", number)
            yield number, record


def _string_field(record: dict[str, Any], key: str, path: Path, number: int, required: bool) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise DataError(path, f"missing '{key}'", number)
        return ""
    if key == "_id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(path, f"'{key}' must be a string, got {type(value).__name__}", number)
    return value


def _record_id(record: dict[str, Any], path: Path, number: int, seen: set[str]) -> str:
    record_id = _string_field(record, "_id", path, number, required=True).strip()
    if not record_id:
        raise DataError(path, "empty '_id'", number)
    if record_id in seen:
        raise DataError(path, f"duplicate id '{record_id}'", number)
    seen.add(record_id)
    return record_id


def iter_corpus(path: Path) -> Iterator[tuple[int, Document]]:
    """Yield ``(line_number, Document)``; a missing or duplicate ``_id`` stops with its line."""
    seen: set[str] = set()
    for number, record in iter_jsonl(path):
        doc_id = _record_id(record, path, number, seen)
        title = _string_field(record, "title", path, number, required=False)
        text = _string_field(record, "text", path, number, required=False)
        yield number, Document(doc_id, title, text)


def read_queries(path: Path) -> dict[str, tuple[int, str]]:
    """Map query id to ``(line_number, text)``, in file order."""
    queries: dict[str, tuple[int, str]] = {}
    seen: set[str] = set()
    for number, record in iter_jsonl(path):
        query_id = _record_id(record, path, number, seen)
        queries[query_id] = (number, _string_field(record, "text", path, number, required=False))
    return queries


def read_qrels_tsv(path: Path) -> tuple[Qrels, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id corpus-id score``, optional header).

    Returns the qrels and, per query, the line it was first judged on.
    """
    if not path.is_file():
        raise DataError(path, "qrels file not found")
    qrels: Qrels = {}
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            if number == 1 and fields[0].strip().lower() in QRELS_HEADER_IDS:
                continue
            if len(fields) != 3:
                raise DataError(path, f"expected 3 tab-separated fields, got {len(fields)}", number)
            query_id, doc_id, score = (value.strip() for value in fields)
            if not query_id or not doc_id:
                raise DataError(path, "empty query or document id", number)
            try:
                relevance = int(float(score))
            except ValueError:
                raise DataError(path, f"relevance '{score}' is not a number", number) from None
            judged = qrels.setdefault(query_id, {})
            if doc_id in judged and judged[doc_id] != relevance:
                raise DataError(path, f"document '{doc_id}' judged twice for query '{query_id}' with different relevance", number)
            judged[doc_id] = relevance
            first_line.setdefault(query_id, number)
    return qrels, first_line


def write_qrels_trec(qrels: Qrels, handle: Any) -> None:
    """Write qrels in TREC format (``qid 0 docid rel``), the format trec_eval and ranx read."""
    for query_id, judged in qrels.items():
        for doc_id, relevance in judged.items():
            handle.write(f"{query_id} 0 {doc_id} {relevance}\n")


def read_qrels_trec(path: Path) -> Qrels:
    """Read TREC qrels as written by :func:`write_qrels_trec`."""
    qrels: Qrels = {}
    for _, (query_id, _, doc_id, relevance) in iter_rows(path, "qid 0 docid rel"):
        qrels.setdefault(query_id, {})[doc_id] = int(relevance)
    return qrels


def write_queries_jsonl(queries: dict[str, str], handle: Any) -> None:
    for query_id, text in queries.items():
        handle.write(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n")


def read_prepared_queries(path: Path) -> dict[str, str]:
    """Read a queries JSONL file into ``{query_id: text}``, in file order."""
    return {query_id: text for query_id, (_, text) in read_queries(path).items()}


@dataclass(frozen=True)
class PreparedDataset:
    """The split's judged queries (file order), its qrels and the validation report."""

    queries: dict[str, str]
    qrels: Qrels
    report: ValidationReport


def prepare_dataset(name: str, files: BeirFiles, max_missing_examples: int = 10) -> PreparedDataset:
    """Validate a BEIR dataset and select the queries judged in the split."""
    queries = read_queries(files.queries)
    qrels, first_line = read_qrels_tsv(files.qrels)
    for query_id, line in first_line.items():
        if query_id not in queries:
            raise DataError(files.qrels, f"qrels name query '{query_id}', which is not in {files.queries}", line)

    report = ValidationReport(dataset=name, split=files.split, queries_in_file=len(queries))
    judged: dict[str, str] = {}
    for query_id, (line, text) in queries.items():
        if query_id not in qrels:
            if not text.strip():
                report.unjudged_queries_without_text += 1
            continue
        if not text.strip():
            raise DataError(files.queries, f"query '{query_id}' has no text", line)
        judged[query_id] = text

    judged_documents = {doc_id for judged_docs in qrels.values() for doc_id in judged_docs}
    for _, document in iter_corpus(files.corpus):
        report.documents += 1
        judged_documents.discard(document.doc_id)

    report.judged_queries = len(judged)
    report.judgements = sum(len(docs) for docs in qrels.values())
    report.relevant_judgements = sum(1 for docs in qrels.values() for rel in docs.values() if rel > 0)
    report.judged_documents_missing_from_corpus = len(judged_documents)
    report.missing_document_examples = sorted(judged_documents)[:max_missing_examples]
    ordered_qrels = {query_id: qrels[query_id] for query_id in judged}
    return PreparedDataset(judged, ordered_qrels, report)
