"""BM25 through Pyserini on a tiny corpus: field layouts, --remove-query and its opt-out, memory sizing."""

from __future__ import annotations

from pathlib import Path

import pytest

from beirflow.bm25.lucene import Bm25Params, build_index, index_document_count, indexable_documents, indexing_memory, search

QUERIES = {"q1": "purring cats", "q2": "swimming fish"}


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from conftest import write_beir

    root = tmp_path_factory.mktemp("bm25")
    corpus = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr and sleep."},
        {"_id": "d2", "title": "Dogs", "text": "Dogs bark at cats."},
        {"_id": "q2", "title": "Fish", "text": "Fish swim in rivers."},
        {"_id": "d4", "title": "Swimming fish", "text": "Rivers."},
    ]
    folder = write_beir(root / "data", corpus, [{"_id": q, "text": t} for q, t in QUERIES.items()], [("q1", "d1", 1)])
    built = {}
    for fields in ("flat", "multifield"):
        built[fields] = root / fields
        build_index(folder / "corpus.jsonl", built[fields], fields, threads=1)  # memory_mb would cap this process's one JVM
    return built


def _ids(index: Path, params: Bm25Params) -> dict[str, list[str]]:
    return {query_id: [doc for doc, _ in hits] for query_id, hits in search(index, QUERIES, params)}


def test_remove_query_drops_the_hit_named_like_the_query(indexes) -> None:
    removed = _ids(indexes["flat"], Bm25Params(fields="flat"))
    kept = _ids(indexes["flat"], Bm25Params(fields="flat", remove_query=False))
    assert "q2" in kept["q2"] and "q2" not in removed["q2"]
    assert [doc for doc in kept["q2"] if doc != "q2"] == removed["q2"]
    assert removed["q1"][0] == "d1"


def test_multifield_indexes_the_title_as_its_own_field(indexes) -> None:
    # d4 says "fish" and "swimming" only in its title: flat folds the title into contents,
    # multifield keeps it apart, so searching multifield's contents alone misses d4.
    def hits(index: Path, params: Bm25Params) -> set[str]:
        return {doc for doc, _ in next(iter(search(index, {"q": "swimming fish"}, params)))[1]}

    assert hits(indexes["flat"], Bm25Params(fields="flat")) == {"q2", "d4"}
    assert hits(indexes["multifield"], Bm25Params(fields="multifield")) == {"q2", "d4"}
    assert hits(indexes["multifield"], Bm25Params(fields="multifield", field_weights={"contents": 1.0})) == {"q2"}


def test_indexing_memory_fits_the_job() -> None:
    assert indexing_memory(None) == (None, 2048)
    assert indexing_memory(2048) == (1536, 768)
    assert indexing_memory(32000) == (24000, 4096)


def test_query_max_chars_cuts_the_query_before_bm25_only(indexes) -> None:
    """The paper's first stage: queries cut to their first N characters; 'swimming' alone finds q2 and d4 only."""
    long_query = {"q": "swimming " + "purring cats " * 100}
    cut = Bm25Params(fields="flat", query_max_chars=len("swimming"), remove_query=False)
    whole = Bm25Params(fields="flat", remove_query=False)
    cut_hits = {doc for doc, _ in next(iter(search(indexes["flat"], long_query, cut)))[1]}
    whole_hits = {doc for doc, _ in next(iter(search(indexes["flat"], long_query, whole)))[1]}
    assert cut_hits == {"q2", "d4"} and {"d1", "d2"} <= whole_hits
    assert cut.query_text("x" * 2000) == "x" * 8 and whole.query_text("x" * 2000) == "x" * 2000


@pytest.mark.parametrize("fields", ["flat", "multifield"])
def test_search_returns_the_hits_pyserinis_lucene_searcher_returns(fields: str, tmp_path: Path) -> None:
    """beirflow calls Anserini's searcher and index reader without importing Pyserini's wrappers (which import
    torch, or pandas): same calls, so the same documents, scores and document count, on the real SciFact sample."""
    import json

    from pyserini.index.lucene import LuceneIndexReader
    from pyserini.search.lucene import LuceneSearcher

    from conftest import SAMPLE

    queries = {row["_id"]: row["text"] for row in map(json.loads, (SAMPLE / "queries.jsonl").read_text().splitlines())}
    index = tmp_path / fields
    build_index(SAMPLE / "corpus.jsonl", index, fields, threads=1)
    params = Bm25Params(fields=fields, remove_query=False, hits=100)
    ours = dict(search(index, queries, params, batch_size=7))

    searcher = LuceneSearcher(str(index))
    searcher.set_bm25(params.k1, params.b)
    theirs = searcher.batch_search(list(queries.values()), list(queries), 100, 1, fields=params.search_fields())
    assert len(ours) == len(queries) > 40
    for query_id in queries:
        assert ours[query_id] == [(hit.docid.strip(), float(hit.score)) for hit in theirs[query_id]], query_id
        assert len(ours[query_id]) > 10
    counted = index_document_count(index)
    assert counted == LuceneIndexReader(str(index)).stats()["documents"] == indexable_documents(SAMPLE / "corpus.jsonl", fields)
