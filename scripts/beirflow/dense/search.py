"""Dense retrieval: embeddings per document shard, exact inner-product search with FAISS, one global top-k.

Embeddings are stored per shard as ``NNNN.npy`` (float16, rows in shard order) with ``NNNN.ids``
beside it (one document id per line). Their folder is named by what determines them (model,
revision, pooling, normalisation, prefixes, maximum length, precision: :func:`encoder_key`), so
two systems with one encoder share one set.

Search reads one shard at a time: each shard's top ``k`` per query comes from FAISS, exact for the
default ``Flat`` index, and is merged into the running global top ``k`` from the float32 scores
themselves, never from text. Ties are broken by document id (ascending), as run files order them,
at every shard boundary too: a shard is searched deeper than ``k``, and where its deepest hit still
ties the ``k``-th, searched again deeper, so no tied document is dropped by FAISS's arbitrary choice.
Each search starts on FAISS's grid of document blocks in the whole corpus, so sharded and unsharded
search give the same ids and the same scores, to the bit.

Memory: the queries' vectors, one shard's vectors in float32, the running top ``k`` and the ids
of the corpus (for the tie order); the run is written from columns, a block of queries at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from beirflow.models.loading import ModelError
from beirflow.runs.columns import HitColumns
from beirflow.workflow.atomic import atomic_path, atomic_write
from beirflow.workflow.errors import DataError, rebuild_hint
from beirflow.workflow.family import unit_key
from beirflow.workflow.integrity import Writer, record_path, verify
from beirflow.workflow.settings import decode

if TYPE_CHECKING:
    from beirflow.workflow.dataset_plan import DatasetPlan

FLAT = "Flat"
# Keys of a dense entry that change no result, beside the common ones (beirflow.workflow.settings.OPERATIONAL_KEYS):
# a declared dimension serves the plan's disk figures only; keep_embeddings says what happens after the search.
OPERATIONAL_KEYS = ("dimension", "keep_embeddings")
QUERY_BLOCK = 1024  # queries searched and merged at once
# faiss's GPU indexes return at most this many neighbours per query.
GPU_MAX_K = 2048
NO_HIT = -1


@dataclass(frozen=True)
class DenseSettings:
    """The keys of a dense system's config entry that change its run (the rule params)."""

    model: str
    revision: str | None = None
    pooling: str | None = None  # None: the model folder's sentence-transformers config
    normalize: bool | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    max_length: int | None = None
    precision: str = "bf16"
    hits: int = 1000
    index: str = FLAT
    remove_query: bool = True
    specb: bool = False  # SGPT's bracket tokens around queries and documents

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], key: str = "") -> DenseSettings:
        """Strict: a key this family does not know raises, naming ``key`` (``dense.<system>``)."""
        return decode(cls, entry, key, OPERATIONAL_KEYS)

    def encoder_identity(self) -> dict[str, Any]:
        """What the embeddings depend on; search keys (hits, index) are not part of it."""
        keys = ("model", "revision", "pooling", "normalize", "query_prefix", "document_prefix", "max_length", "precision")
        values = asdict(self)
        identity = {key: values[key] for key in keys}
        if self.specb:  # only when set, so that the embeddings of every other encoder keep their key
            identity["specb"] = True
        return identity


# An encoder's folder name: its model's readable name and a hash of its identity.
encoder_key = unit_key


# ---- embeddings on disk -----------------------------------------------------------------


@dataclass
class Embeddings:
    ids: list[str]
    vectors: np.ndarray  # float16, memory-mapped, one row per id
    vectors_path: Path

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])


def write_embeddings(
    vectors: np.ndarray, ids: Sequence[str], vectors_path: Path, ids_path: Path, writer: Writer | None = None
) -> None:
    """Both files atomically, each with its record; float16 on disk (vectors are computed in float32)."""
    if len(ids) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors for {len(ids)} ids")
    bad = next((doc_id for doc_id in ids if not doc_id or any(char.isspace() for char in doc_id)), None)
    if bad is not None:
        raise ValueError(f"id {bad!r} is empty or holds whitespace; run files cannot carry it")
    rows, dimension = len(ids), int(vectors.shape[1]) if vectors.ndim == 2 else -1
    with atomic_write(ids_path, check=lambda written: _check_id_count(written, rows), writer=writer) as handle:
        handle.writelines(f"{doc_id}\n" for doc_id in ids)
    with (
        atomic_path(vectors_path, check=lambda written: check_embeddings(written, rows, dimension), writer=writer) as temporary,
        open(temporary, "wb") as handle,
    ):
        np.save(handle, np.ascontiguousarray(vectors, dtype=np.float16))


def read_array(path: Path) -> np.ndarray:
    """A ``.npy`` memory-mapped; one that is not a complete array file names itself."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, EOFError, OSError) as error:
        raise DataError(path, f"not a complete NumPy array file: {type(error).__name__}: {error}") from None


def check_embeddings(path: Path, rows: int, dimension: int) -> dict[str, int]:
    """A float16 ``.npy`` of ``rows`` x ``dimension``, all of its bytes on disk, every value finite (a model
    that overflows float16 gives infinities, and FAISS would silently drop their documents)."""
    vectors = read_array(path)
    if vectors.dtype != np.float16 or vectors.shape != (rows, dimension):
        raise DataError(path, f"holds a {vectors.dtype} array of shape {vectors.shape}, expected float16 ({rows}, {dimension})")
    check_finite(vectors, path)
    return {"rows": rows, "dimension": dimension}


def check_finite(vectors: np.ndarray, path: Path) -> None:
    """Every value finite, read a block of rows at a time (the array may be memory-mapped)."""
    for start in range(0, len(vectors), 65_536):
        block = np.asarray(vectors[start : start + 65_536])
        if not np.isfinite(block).all():
            row = start + int(np.argmax(~np.isfinite(block).all(axis=1)))
            raise DataError(path, f"embedding {row} holds a value that is not finite (NaN or infinite); {rebuild_hint(path)}")


def _check_id_count(path: Path, rows: int) -> dict[str, int]:
    found = len(read_ids(path))
    if found != rows:
        raise DataError(path, f"holds {found} ids, expected {rows}")
    return {"rows": rows}


def read_ids(ids_path: Path) -> list[str]:
    if not ids_path.is_file():
        raise DataError(ids_path, "file not found")
    return ids_path.read_text(encoding="utf-8").splitlines()


def read_embeddings(vectors_path: Path, ids_path: Path, rows: int | None = None, dimension: int | None = None) -> Embeddings:
    """A shard's vectors (memory-mapped) and ids, each checked against its record (and against the ``rows``
    and ``dimension`` its encode job's record gives) before it is read; a count that differs from the ids
    is rejected."""
    if record_path(ids_path).exists() or record_path(vectors_path).exists() or rows is not None:
        verify(ids_path, None if rows is None else {"rows": rows})
        expected = {key: value for key, value in (("rows", rows), ("dimension", dimension)) if value is not None}
        verify(vectors_path, expected)
    ids = read_ids(ids_path)
    if not vectors_path.is_file():
        raise DataError(vectors_path, "file not found")
    try:
        vectors = np.load(vectors_path, mmap_mode="r")
    except (ValueError, EOFError, OSError) as error:  # truncated: ValueError; empty: EOFError
        raise DataError(
            vectors_path, f"not a complete NumPy array file ({type(error).__name__}: {error}); {rebuild_hint(vectors_path)}"
        ) from None
    if vectors.ndim != 2 or vectors.dtype != np.float16:
        raise DataError(
            vectors_path, f"expected a 2-D float16 array, found {vectors.ndim}-D {vectors.dtype}; {rebuild_hint(vectors_path)}"
        )
    if vectors.shape[0] != len(ids):
        raise DataError(
            vectors_path,
            f"holds {vectors.shape[0]} embeddings but {ids_path} holds {len(ids)} ids; the shard is incomplete or mismatched; {rebuild_hint(vectors_path)}",
        )
    return Embeddings(ids, vectors, vectors_path)


def check_dimensions(queries: Embeddings, documents: Embeddings) -> None:
    if queries.dimension != documents.dimension:
        raise DataError(
            documents.vectors_path,
            f"document embeddings have dimension {documents.dimension} but the query embeddings in {queries.vectors_path} have {queries.dimension}",
        )


# ---- search -----------------------------------------------------------------------------

# The dimension the search's memory is sized for when the model's is not known before its fetch: the
# largest in config/paper.yaml (SGPT-5.8B).
LARGEST_DIMENSION = 4096


def search_memory_mb(documents: int, documents_per_shard: int, dimension: int | None, queries: int, hits: int) -> int:
    """Host memory (MB) a dense_search job asks for by default, from what it holds: one shard's vectors
    twice (float16 mapped, float32 for FAISS), the corpus's ids and their tie ranks, every query's top
    hits and one block's merge, and the process itself. Calibrated on bench/scaling.py's measurement,
    612 MB for 1M x 384 in shards of 100,000 with 7,000 queries x 1,000 hits; the estimate there is
    about 1,000 MB, a margin of half again for what was not measured (GPU indexes, other dimensions)."""
    shard = min(documents, documents_per_shard) * (dimension or LARGEST_DIMENSION) * 6
    ids = documents * 100
    top_hits = queries * (hits + 1) * 12 * 2 + QUERY_BLOCK * (hits + 1 + first_depth(hits + 1, documents)) * 40
    return 400 + math.ceil((shard + ids + top_hits) / 2**20)


def search_job_memory_mb(entry: Mapping[str, Any], documents_per_shard: int, dataset: DatasetPlan) -> int:
    """A dense system's search job's mem_mb on a dataset, first attempt: its ``resources.search_mem_mb``,
    else :func:`search_memory_mb` of the dataset (counted only then)."""
    explicit = entry.get("resources", {}).get("search_mem_mb")
    if explicit is not None:
        return int(explicit)
    return search_memory_mb(
        dataset.document_count(), documents_per_shard, entry.get("dimension"), dataset.query_count(), entry["hits"]
    )


@dataclass
class TopHits:
    """Per query (rows), the best hits so far: float32 scores and global document positions."""

    scores: np.ndarray  # (queries, k) float32, -inf where there is no hit
    positions: np.ndarray  # (queries, k) int64 into the corpus-wide id list, NO_HIT where none

    @classmethod
    def empty(cls, queries: int) -> TopHits:
        return cls(np.zeros((queries, 0), dtype=np.float32), np.zeros((queries, 0), dtype=np.int64))


def id_ranks(ids: Sequence[str]) -> np.ndarray:
    """Each document's place in id order: the tie-breaker, as integers."""
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids), dtype=np.int64)
    return ranks


def merge_top_hits(parts: Sequence[TopHits], k: int, ranks: np.ndarray, ordered: bool = True) -> TopHits:
    """The best ``k`` of several hit lists per query by score descending, then document id ascending; in that
    order when ``ordered``, else in any order (a merge whose result is merged again need not sort)."""
    scores = np.concatenate([part.scores for part in parts], axis=1)
    positions = np.concatenate([part.positions for part in parts], axis=1)
    keys = run_order_keys(scores, np.where(positions == NO_HIT, NO_HIT_RANK, ranks[np.maximum(positions, 0)]))
    if keys.shape[1] > k:  # the best k by partition, then only they are sorted
        order = np.argpartition(keys, k - 1, axis=1)[:, :k]
        if ordered:
            order = np.take_along_axis(order, np.argsort(np.take_along_axis(keys, order, axis=1), axis=1), axis=1)
    else:
        order = np.argsort(keys, axis=1) if ordered else np.broadcast_to(np.arange(keys.shape[1]), keys.shape)
    return TopHits(np.take_along_axis(scores, order, axis=1), np.take_along_axis(positions, order, axis=1))


NO_HIT_RANK = 2**32 - 1


def run_order_keys(scores: np.ndarray, tie_ranks: np.ndarray) -> np.ndarray:
    """One unsigned integer per hit whose ascending order is the run order: float32 score descending,
    then tie rank (the document's place in id order) ascending. One integer sort instead of a two-key
    lexsort: the merge of each shard's hits was most of the sharded search's overhead."""
    bits = (np.asarray(scores, dtype=np.float32) + np.float32(0.0)).view(np.uint32)  # + 0.0: -0.0 equals 0.0
    ascending = np.where(bits >> np.uint32(31) == 1, ~bits, bits | np.uint32(0x80000000))  # IEEE order as unsigned
    return ((~ascending).astype(np.uint64) << np.uint64(32)) | tie_ranks.astype(np.uint64)


def build_index(spec: str, vectors: np.ndarray, use_gpu: bool, key: str) -> Any:
    """An inner-product FAISS index over ``vectors`` (float32): ``Flat`` is exact; other factory strings train on the shard."""
    import faiss

    dimension = vectors.shape[1]
    if spec == FLAT and not use_gpu:
        return ExactInnerProduct(vectors)
    try:
        index = faiss.IndexFlatIP(dimension) if spec == FLAT else faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise ModelError(
            f"config key {key}: '{spec}' is not a FAISS index_factory string: {str(error).strip().splitlines()[-1]}"
        ) from None
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    if use_gpu:
        index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
    return index


class ExactInnerProduct:
    """What ``IndexFlatIP`` computes (FAISS's same kernel: identical scores and rows) over the shard's
    vectors as they are: the index would hold a second copy, 154 MB for 100,000 x 384."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        return faiss.knn(queries, self.vectors, k, metric=faiss.METRIC_INNER_PRODUCT)


@cache
def _gpu_resources() -> Any:
    """One set of GPU scratch memory and streams per process, alive as long as the indexes using it."""
    import faiss

    return faiss.StandardGpuResources()


def gpu_count() -> int:
    import faiss

    return int(faiss.get_num_gpus())


def gpu_available() -> bool:
    try:
        import faiss

        return bool(faiss.get_num_gpus() > 0)
    except (ImportError, AttributeError):
        return False


def search_shard(queries: np.ndarray, vectors: np.ndarray, offset: int, k: int, spec: str, use_gpu: bool, key: str) -> TopHits:
    """The shard's hits per query, positions offset into the corpus, in no order: its best ``k``, and where the
    ``k``-th ties the next, every document of that tie (the block is searched again deeper until it ends)."""
    count = len(vectors)
    if count == 0:
        return TopHits.empty(len(queries))
    keep, asked = min(k, count), len(queries)
    queries = with_a_query_per_thread(queries)
    index = build_index(spec, vectors, use_gpu, key)
    depth = first_depth(keep, count)
    while True:
        scores, rows = index.search(queries, depth)
        if spec != FLAT or depth == count or not tie_goes_on(scores, rows, keep):
            break
        depth = min(depth * 2, count, GPU_MAX_K) if use_gpu and depth < GPU_MAX_K else min(depth * 2, count)
        if use_gpu and depth > GPU_MAX_K:
            index, use_gpu = build_index(spec, vectors, False, key), False
    scores, rows = scores[:asked], rows[:asked]
    positions = np.where(rows == NO_HIT, NO_HIT, rows.astype(np.int64) + offset)
    return TopHits(np.where(rows == NO_HIT, -np.inf, scores).astype(np.float32), positions)


def with_a_query_per_thread(queries: np.ndarray) -> np.ndarray:
    """At least as many queries as FAISS has threads (copies of the last added): with fewer, FAISS splits the
    documents among its threads instead, and a score's last bit would depend on where the shards cut them."""
    import faiss

    missing = faiss.omp_get_max_threads() - len(queries)
    return np.concatenate([queries, np.repeat(queries[-1:], missing, axis=0)]) if missing > 0 and len(queries) else queries


def first_depth(keep: int, count: int) -> int:
    """How deep a shard is searched first: a quarter (at least 16) past the cut, so that a tie at the cut seldom
    sends the block back to FAISS (1,251 hits instead of 1,001 cost FAISS about 3% more; a search again, all of it).
    A block is searched again whole, never a part of it: FAISS's float sums for a query depend on the queries
    searched with it (its BLAS kernels by their number and place), and the scores must be the block's."""
    return min(keep + max(keep // 4, 16), count)


def tie_goes_on(scores: np.ndarray, rows: np.ndarray, keep: int) -> bool:
    """Whether, for some query, the tie group of the ``keep``-th hit may go on past the deepest hit that came back."""
    deepest = scores.shape[1] - 1
    return deepest >= keep and bool(np.any((scores[:, deepest] == scores[:, keep - 1]) & (rows[:, deepest] != NO_HIT)))


def search(
    queries: Embeddings,
    shards: Iterable[Embeddings],
    corpus_ids: Sequence[str],
    k: int,
    spec: str = FLAT,
    use_gpu: bool = False,
    remove_query: bool = True,
    key: str = "dense",
) -> dict[str, list[tuple[str, float]]]:
    """:func:`search_columns` as a dict: every query's ``k`` best (document id, score), in run order."""
    run: dict[str, list[tuple[str, float]]] = {query_id: [] for query_id in queries.ids}
    for columns in search_columns(queries, shards, corpus_ids, k, spec, use_gpu, remove_query, key):
        for query_id, doc_id, score in zip(
            columns.query_ids.to_pylist(), columns.doc_ids.to_pylist(), columns.scores.tolist(), strict=True
        ):
            run[query_id].append((doc_id, score))
    return run


def search_columns(
    queries: Embeddings,
    shards: Iterable[Embeddings],
    corpus_ids: Sequence[str],
    k: int,
    spec: str = FLAT,
    use_gpu: bool = False,
    remove_query: bool = True,
    key: str = "dense",
) -> Iterator[HitColumns]:
    """Every query's ``k`` best documents over all shards (in order, their ids concatenated = ``corpus_ids``), the
    run's columns a block of queries at a time, once every shard is searched."""
    wanted = k + 1 if remove_query else k  # one hit may be the query itself
    best = top_hits(queries, shards, corpus_ids, wanted, spec, use_gpu, key)
    return run_columns(best, queries.ids, corpus_ids, k, remove_query)


def top_hits(
    queries: Embeddings,
    shards: Iterable[Embeddings],
    corpus_ids: Sequence[str],
    wanted: int,
    spec: str = FLAT,
    use_gpu: bool = False,
    key: str = "dense",
) -> TopHits:
    """Every query's ``wanted`` best documents over all shards, as positions into ``corpus_ids``, in run order."""
    if len(corpus_ids) >= NO_HIT_RANK:
        raise ValueError(f"{len(corpus_ids)} documents: more than one search can order (the tie ranks are 32-bit)")
    ranks = id_ranks(corpus_ids)
    query_vectors = np.asarray(queries.vectors, dtype=np.float32)
    best = TopHits(
        np.full((len(query_vectors), wanted), -np.inf, dtype=np.float32), np.full((len(query_vectors), wanted), NO_HIT)
    )
    # FAISS scores the documents 1,024 (its database block) at a time, and a score's last bit may depend on
    # where its document falls in a block: each search starts where the whole corpus's block does, the
    # documents past a shard's last whole block carried on to the next.
    grid = int(faiss_database_block())
    carried = np.zeros((0, query_vectors.shape[1]), dtype=np.float32)
    start = 0  # the corpus position of the first carried document
    for shard in shards:
        check_dimensions(queries, shard)
        vectors = np.empty((len(carried) + len(shard.vectors), query_vectors.shape[1]), dtype=np.float32)
        vectors[: len(carried)] = carried
        vectors[len(carried) :] = shard.vectors
        check_finite(vectors[len(carried) :], shard.vectors_path)
        whole = (start + len(vectors)) // grid * grid - start
        search_documents(query_vectors, vectors[:whole], start, best, ranks, spec, use_gpu, key)
        carried, start = vectors[whole:].copy(), start + whole
        del vectors, shard
    search_documents(query_vectors, carried, start, best, ranks, spec, use_gpu, key)
    if start + len(carried) != len(corpus_ids):
        raise ValueError(f"the shards hold {start + len(carried)} embeddings but the corpus has {len(corpus_ids)} ids")
    for first in range(0, len(query_vectors), QUERY_BLOCK):  # merged unordered until now: sorted once
        block = slice(first, first + QUERY_BLOCK)
        ordered = merge_top_hits([TopHits(best.scores[block], best.positions[block])], wanted, ranks)
        best.scores[block], best.positions[block] = ordered.scores, ordered.positions
    return best


def search_documents(
    queries: np.ndarray, vectors: np.ndarray, offset: int, best: TopHits, ranks: np.ndarray, spec: str, use_gpu: bool, key: str
) -> None:
    """Merges the hits among ``vectors`` (the corpus's from ``offset``) into ``best``, a block of queries at a time:
    the merge's arrays are the block's (MS MARCO's 7,000 queries x 2,002 hits at once took about 500 MB)."""
    if len(vectors) == 0:
        return
    wanted = best.scores.shape[1]
    for start in range(0, len(queries), QUERY_BLOCK):
        block = slice(start, start + QUERY_BLOCK)
        found = search_shard(queries[block], vectors, offset, wanted, spec, use_gpu, key)
        merged = merge_top_hits([TopHits(best.scores[block], best.positions[block]), found], wanted, ranks, ordered=False)
        best.scores[block], best.positions[block] = merged.scores, merged.positions


def faiss_database_block() -> int:
    import faiss

    return int(faiss.cvar.distance_compute_blas_database_bs)


def run_columns(
    best: TopHits, query_ids: Sequence[str], corpus_ids: Sequence[str], k: int, remove_query: bool
) -> Iterator[HitColumns]:
    """The run's hits as columns, a block of queries at a time: each query's hits of ``best`` (in run order)
    but the query itself where ``remove_query``, its first ``k`` ranked from 1."""
    import pyarrow as pa
    import pyarrow.compute as pc

    queries = pa.array(query_ids, type=pa.string())
    corpus = pa.array(corpus_ids, type=pa.string())
    own = (  # each query's place among the documents, where it is one
        pc.index_in(queries, value_set=corpus).fill_null(NO_HIT).to_numpy().astype(np.int64)
        if remove_query
        else np.full(len(query_ids), NO_HIT, dtype=np.int64)
    )
    for start in range(0, len(query_ids), QUERY_BLOCK):
        block = slice(start, start + QUERY_BLOCK)
        positions = best.positions[block]
        kept = (positions != NO_HIT) & (positions != own[block, None])
        ranks = np.cumsum(kept, axis=1)
        kept &= ranks <= k
        rows, columns = np.nonzero(kept)
        yield HitColumns(
            queries.take(pa.array(rows + start)),
            corpus.take(pa.array(positions[rows, columns])),
            ranks[rows, columns].astype(np.int64),
            best.scores[block][rows, columns].astype(np.float64),
        )
