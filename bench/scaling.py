"""Every stage of beirflow measured as the corpus grows: wall time, peak memory and bytes written.

    python bench/scaling.py                          # 10k, 100k and 1M documents
    python bench/scaling.py --sizes 10000 100000     # a quicker pass
    python bench/scaling.py --sizes 1000000 --only "bm25 search" merge "dense search" fusion --premade-lines

Each size is a synthetic BEIR dataset shaped like SciFact (bench/synthetic.py). Each stage runs
through its own stage program (scripts/*.py, the command a rule runs), one process per measurement;
its peak resident memory is that process's own (os.wait4), the bytes written are its outputs'
sizes. Jobs that work per shard (encoding, reranking) are measured on one shard of the workflow's
default size, as a cluster runs them; their memory should not grow with the corpus. The encoder and
the cross-encoder are tiny (real MiniLM tokenizer, 2 layers of width 32), so their figures are
beirflow's own cost per text (reading, tokenizing, batching, writing), not a model's. Dense search
runs over random float16 unit vectors of dimension 384, one file per shard of 100,000, as the encode
jobs would leave them. Evaluation is timed at MS MARCO's size whatever the corpus: 20 systems'
runs of 7,000 queries x 1,000 hits in one job. With ``--premade-lines``, each stage that writes a run is measured
again with the run's lines copied from the run it just wrote instead of formatted (bench/premade_lines.py):
the stage with its run written at the disk's speed.

Writes bench/scaling.csv (one row per size and stage) and bench/scaling.png (log-log time and
memory against documents, each stage's fitted growth exponent in its legend), and prints the
exponents and the targets: no stage above N log N in time (exponent about 1.1 over these sizes),
encode / candidates / rerank / search memory flat in N apart from the ids, the search at 1M x 384
under 1 GB, the 20-system evaluation under 60 s.
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(REPO / "tests"))

from beirflow.runs import compiled  # noqa: E402
from beirflow.workflow.integrity import adopt, record_path  # noqa: E402
from model_builders import build_tiny_minilm_pair  # noqa: E402
from premade_lines import line_ends  # noqa: E402

PYTHON = sys.executable
DOCUMENTS_PER_SHARD = 100_000  # the workflow's default (shards.documents_per_shard)
QUERIES_PER_SHARD = 100  # likewise (shards.queries_per_shard)
DIMENSION = 384
EVALUATED_QUERIES, EVALUATED_HITS, EVALUATED_SYSTEMS = 7_000, 1_000, 20
QUERIES_FOR = {10_000: 1_000, 100_000: 3_000, 1_000_000: 7_000}


@dataclass
class Measurement:
    documents: int
    queries: int
    stage: str
    seconds: float
    peak_rss_mb: float
    bytes_written: int
    note: str = ""
    integrity_seconds: float = 0.0  # what the stage spent writing its outputs' records and checking its inputs'
    # With --premade-lines, for a stage that writes a run: the same stage with its run's lines copied, not formatted
    # (bench/premade_lines.py), that is, with the run written at the disk's speed.
    premade_lines_seconds: float = 0.0


def measure(stage: str, command: list[str], outputs: list[Path], log: Path, numba_cache: Path) -> tuple[float, float, int, float]:
    """Run one stage program to completion: (seconds, its peak RSS in MB, bytes its outputs hold, the seconds
    of its integrity records and checks as its log gives them).

    GNU time reports the peak RSS of the program alone (a child forked from this process would
    count this process's own pages until it execs)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    usage = log.with_suffix(".time")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "NUMBA_CACHE_DIR": str(numba_cache)}
    with open(log, "w", encoding="utf-8") as handle:
        started = time.perf_counter()
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(usage), *command],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=environment,
            check=False,
        )
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{stage} failed ({result.returncode}); its log, {log}:\n{log.read_text(encoding='utf-8')[-3000:]}")
    peak_kb = int(usage.read_text(encoding="utf-8").split()[-1])
    checks = re.search(r"integrity: \d+ records written or checked in ([\d.]+) s", log.read_text(encoding="utf-8"))
    return seconds, peak_kb / 1024, sum(_size(path) for path in outputs), float(checks[1]) if checks else 0.0


def premade_lines_seconds(stage: str, command: list[str], run: Path, log: Path, numba_cache: Path) -> float:
    """The seconds of the stage ``command`` again, with the lines of the ``run`` it wrote copied instead of formatted
    (bench/premade_lines.py); it must write the same bytes."""
    reference, ends = run.with_name(f"{run.name}.premade"), run.with_name(f"{run.name}.line-ends.npy")
    reference.unlink(missing_ok=True)
    os.link(run, reference)  # the stage's rename gives the run's name a new file; this one keeps the old
    np.save(ends, line_ends(run))
    try:
        premade = [command[0], str(REPO / "bench" / "premade_lines.py"), str(reference), str(ends), *command[1:]]
        seconds = measure(f"{stage}, lines pre-made", premade, [run], log, numba_cache)[0]
        if not filecmp.cmp(run, reference, shallow=False):
            raise SystemExit(f"{stage} with its lines pre-made wrote other bytes than {reference}")
    finally:
        reference.unlink()
        ends.unlink()
    return seconds


def _file_name(stage: str) -> str:
    return "".join(character if character.isalnum() else "-" for character in stage).strip("-")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size if path.exists() else 0


def random_embeddings(work: Path, corpus_shards: Path, queries: int, seed: int) -> tuple[Path, Path, list[str]]:
    """Unit float16 vectors of dimension 384 for every document shard and the queries, as encode jobs leave them."""
    rng = np.random.default_rng(seed)
    folder = work / "embeddings-384"
    (folder / "corpus").mkdir(parents=True, exist_ok=True)
    shards = sorted(path.stem for path in corpus_shards.glob("*.jsonl"))
    for shard in shards:
        _write_vectors(folder / "corpus" / shard, _ids(corpus_shards / f"{shard}.jsonl"), rng)
    query_ids = _ids(work / "data" / "queries.jsonl")[:queries]
    _write_vectors(folder / "queries", query_ids, rng)
    return folder / "corpus", folder / "queries.npy", shards


def _ids(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["_id"] for line in handle]


def _write_vectors(stem: Path, ids: list[str], rng: np.random.Generator) -> None:
    vectors = rng.standard_normal((len(ids), DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.save(stem.with_suffix(".npy"), vectors.astype(np.float16))
    stem.with_suffix(".ids").write_text("".join(f"{doc_id}\n" for doc_id in ids), encoding="utf-8")
    record = {
        "kind": "documents",
        "texts": len(ids),
        "dimension": DIMENSION,
        "seconds": 0.0,
        "device": "random",
        "model_revision": "random",
    }
    stem.with_suffix(".json").write_text(json.dumps(record), encoding="utf-8")
    for extension in (".npy", ".ids", ".json"):
        adopt(stem.with_suffix(extension))  # the bench wrote them, not an encode job: recorded as by hand


def evaluation_runs(work: Path, qrels_queries: list[str], documents: int, seed: int) -> list[Path]:
    """20 systems' runs of 7,000 queries x 1,000 hits (MS MARCO's dev set at the paper's depth)."""
    rng = np.random.default_rng(seed)
    queries = (qrels_queries * (EVALUATED_QUERIES // max(len(qrels_queries), 1) + 1))[:EVALUATED_QUERIES]
    runs = [work / "evaluation" / f"system-{system:02d}.trec" for system in range(EVALUATED_SYSTEMS)]
    if all(path.is_file() and path.stat().st_size and record_path(path).is_file() for path in runs):
        return runs  # a pass before drew them (writing them takes minutes; delete the folder to draw again)
    for system, path in enumerate(runs):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            for number, query_id in enumerate(queries):
                hits = rng.choice(documents, size=EVALUATED_HITS, replace=False)
                tag = f"{query_id}-{number}" if number >= len(qrels_queries) else query_id
                handle.write(
                    "".join(
                        f"{tag} Q0 doc{hit} {rank} {EVALUATED_HITS - rank}.5 system-{system:02d}\n"
                        for rank, hit in enumerate(hits, start=1)
                    )
                )
        adopt(path)
    return runs


def query_shard_runs(run: Path, folder: Path, queries_per_shard: int) -> list[Path]:
    """``run`` cut into runs of ``queries_per_shard`` queries each, as the rerank jobs of query shards leave them."""
    shards: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    with open(run, encoding="utf-8") as handle:
        queries = ("".join(lines) for _, lines in itertools.groupby(handle, key=lambda line: line.split(" ", 1)[0]))
        while batch := list(itertools.islice(queries, queries_per_shard)):
            shards.append(folder / f"{len(shards):04d}.trec")
            shards[-1].write_text("".join(batch), encoding="utf-8")
            adopt(shards[-1])
    return shards


def run_size(
    documents: int,
    queries: int,
    root: Path,
    models: tuple[Path, Path],
    seed: int,
    only: tuple[str, ...] = (),
    premade_lines: bool = False,
) -> list[Measurement]:
    """Every stage at one size; with ``only``, just the stages whose names contain one of them, over the
    outputs a full pass left (to measure a stage again after changing it). With ``premade_lines``, each stage
    that writes a run is measured again with its lines copied from the run it just wrote (the bound)."""
    data, work = root / f"data-{documents}", root / f"work-{documents}"
    if not only:
        shutil.rmtree(work, ignore_errors=True)
    logs = work / "logs"
    rows: list[Measurement] = []

    def stage(name: str, command: list[str], outputs: list[Path], note: str = "", run: Path | None = None) -> None:
        if not wanted(name):
            return
        seconds, rss, written, checks = measure(name, command, outputs, logs / f"{_file_name(name)}.log", root / "numba-cache")
        rows.append(Measurement(documents, queries, name, round(seconds, 2), round(rss, 1), written, note, round(checks, 3)))
        print(
            f"  {documents:>9,} {name:34} {seconds:9.2f} s {rss:9.1f} MB {written / 1e6:10.1f} MB written"
            f"   records and checks {checks:7.3f} s ({100 * checks / seconds:4.1f}%)",
            flush=True,
        )
        if premade_lines and run is not None:
            bound = premade_lines_seconds(name, command, run, logs / f"{_file_name(name)}-premade.log", root / "numba-cache")
            rows[-1].premade_lines_seconds = round(bound, 2)
            print(
                f"  {documents:>9,} {'  with its lines pre-made':34} {bound:9.2f} s: the stage at {bound / seconds:.2f} of its time"
            )

    def wanted(name: str) -> bool:
        return not only or any(part in name for part in only)

    def script(name: str, *arguments: str | Path | int) -> list[str]:
        return [PYTHON, str(SCRIPTS / f"{name}.py"), *map(str, arguments)]

    if not (data / "qrels" / "test.tsv").is_file():
        stage("generate (bench, not beirflow)", [PYTHON, str(REPO / "bench" / "synthetic.py"), "--documents", str(documents),
              "--queries", str(queries), "--seed", str(seed), "--output", str(data)], [data])  # fmt: skip
    corpus = data / "corpus.jsonl"
    prepared = work / "data"
    stage("prepare (validate)", script("prepare_dataset", "--dataset", "synthetic", "--folder", data, "--split", "test",
          "--queries-out", prepared / "queries.jsonl", "--qrels-out", prepared / "qrels.tsv", "--report-out", prepared / "report.json"),
          [prepared])  # fmt: skip
    stage("shard corpus", script("shard_jsonl", "--input", corpus, "--output-dir", work / "shards" / "corpus", "--per-shard", DOCUMENTS_PER_SHARD),
          [work / "shards" / "corpus"])  # fmt: skip
    stage("shard queries", script("shard_jsonl", "--input", prepared / "queries.jsonl", "--output-dir", work / "shards" / "queries",
          "--per-shard", QUERIES_PER_SHARD), [work / "shards" / "queries"])  # fmt: skip
    store = work / "documents.sqlite"
    stage(
        "document store",
        script("build_document_store", "--corpus", corpus, "--output", store, "--report", prepared / "report.json"),
        [store],
    )
    fetch = (
        "import random, time; from pathlib import Path; from beirflow.rerank.docstore import DocumentStore;"
        f"ids = [f'doc{{i}}' for i in random.Random(0).sample(range({documents}), min(100_000, {documents}))];"
        f"store = DocumentStore(Path({str(store)!r})); found = store.fetch(ids); assert len(found) == len(ids), len(found)"
    )
    stage("fetch 100k candidates from the store", [PYTHON, "-c", fetch], [], note=f"{min(100_000, documents):,} random ids")
    index = work / "bm25" / "index"
    stage("bm25 index", script("bm25_index", "--corpus", corpus, "--fields", "flat", "--index", index, "--threads", "2",
          "--memory-mb", "8192"), [index])  # fmt: skip
    bm25_run = work / "bm25" / "run.trec"
    bm25_params = {"fields": "flat", "k1": 0.9, "b": 0.4, "hits": 1000, "remove_query": True}
    stage("bm25 search", script("bm25_search", "--index", index, "--queries", prepared / "queries.jsonl", "--output", bm25_run,
          "--provenance", work / "bm25" / "provenance.json", "--params", json.dumps(bm25_params), "--threads", "2",
          "--dataset", "synthetic", "--system", "bm25"), [bm25_run], note=f"{queries:,} queries x 1,000 hits", run=bm25_run)  # fmt: skip
    merged, merge = work / "merge" / "run.trec", f"merge runs of query shards ({QUERIES_PER_SHARD} queries)"
    if wanted(merge):  # the BM25 run cut as the rerank jobs of query shards leave their runs (not timed)
        shutil.rmtree(work / "merge", ignore_errors=True)
        shard_runs = query_shard_runs(bm25_run, work / "merge" / "shards", QUERIES_PER_SHARD)
        stage(merge, script("merge_runs", *shard_runs, "--output", merged, "--tag", "merged", "--dataset", "synthetic", "--family",
              "bench", "--provenance", work / "merge" / "provenance.json"), [merged], note=f"{len(shard_runs):,} shard runs", run=merged)  # fmt: skip
    candidates = work / "candidates"
    stage("write candidates (top 100)", script("write_candidates", "--run", bm25_run, "--query-shards", work / "shards" / "queries",
          "--depth", "100", "--output-dir", candidates), [candidates])  # fmt: skip
    encoder, cross_encoder = models
    rerank_params = {
        "kind": "cross-encoder",
        "model": str(cross_encoder),
        "first_stage": "bm25",
        "depth": 100,
        "precision": "fp32",
    }
    stage("rerank one shard (tiny cross-encoder)", script("rerank_shard", "--candidates", candidates / "0000.jsonl", "--documents", store,
          "--params", json.dumps(rerank_params), "--threads", "2", "--output", work / "rerank" / "0000.trec", "--stats",
          work / "rerank" / "0000.json", "--dataset", "synthetic", "--system", "tiny-ce"), [work / "rerank"],
          note=f"{QUERIES_PER_SHARD} queries x 100 candidates")  # fmt: skip
    identity = {"model": str(encoder), "revision": None, "pooling": "mean", "normalize": True, "query_prefix": "",
                "document_prefix": "", "max_length": 256, "precision": "fp32"}  # fmt: skip
    encoded = work / "embeddings-tiny"
    stage("encode one shard (tiny encoder)", script("encode_texts", "--input", work / "shards" / "corpus" / "0000.jsonl", "--kind",
          "documents", "--params", json.dumps(identity), "--key", "dense.tiny", "--threads", "2", "--vectors", encoded / "0000.npy",
          "--ids", encoded / "0000.ids", "--stats", encoded / "0000.json", "--dataset", "synthetic", "--encoder", "tiny"), [encoded],
          note=f"{min(DOCUMENTS_PER_SHARD, documents):,} documents")  # fmt: skip
    if only and (work / "embeddings-384" / "queries.npy").is_file():
        shards = sorted(path.stem for path in (work / "shards" / "corpus").glob("*.jsonl"))
        shard_dir, query_vectors = work / "embeddings-384" / "corpus", work / "embeddings-384" / "queries.npy"
    else:
        shard_dir, query_vectors, shards = random_embeddings(work, work / "shards" / "corpus", queries, seed)
    dense_run = work / "dense" / "run.trec"
    dense_params = {"model": "random", "hits": 1000, "index": "Flat", "remove_query": True}
    shard_files: list[str | Path] = []
    for extension, option in (("npy", "--vectors"), ("ids", "--ids"), ("json", "--stats")):
        shard_files += [option, *(shard_dir / f"{shard}.{extension}" for shard in shards)]
    stage(f"dense search (exact, {DIMENSION} dims)", script("dense_search", "--queries", query_vectors, "--query-ids",
          query_vectors.with_suffix(".ids"), "--query-stats", query_vectors.with_suffix(".json"), *shard_files, "--params", json.dumps(dense_params), "--key", "dense.random", "--output", dense_run,
          "--provenance", work / "dense" / "provenance.json", "--dataset", "synthetic", "--system", "dense"), [dense_run],
          note=f"{queries:,} queries x 1,000 hits over {len(shards)} shard(s)", run=dense_run)  # fmt: skip
    fused = work / "fusion" / "run.trec"
    stage("fusion (rrf)", script("fuse_runs", "--params", json.dumps({"method": "rrf", "norm": "min-max", "params": {}, "hits": 1000}),
          "--output", fused, "--provenance", work / "fusion" / "provenance.json", "--dataset", "synthetic", "--system", "fused", "--",
          bm25_run, dense_run), [fused], run=fused)  # fmt: skip
    metrics = work / "metrics.json"
    metric_names = ["ndcg@10", "mrr@10", "recall@100", "recall@1000"]
    stage("evaluate 3 runs", script("evaluate_dataset", "--dataset", "synthetic", "--systems", "bm25", "dense", "fused", "--runs",
          bm25_run, dense_run, fused, "--qrels", prepared / "qrels.tsv", "--metrics", *metric_names, "--output", metrics), [metrics])  # fmt: skip
    return rows


def evaluation_at_msmarco_size(root: Path, data: Path, seed: int) -> Measurement:
    """One evaluate job of 20 systems x 7,000 queries x 1,000 hits, with the synthetic qrels."""
    work = root / f"evaluation-msmarco-{data.name}"  # the runs draw their queries from this size's qrels
    qrels = work / "qrels.tsv"
    work.mkdir(parents=True, exist_ok=True)
    judged = [line.split("\t") for line in (data / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    queries = sorted({query for query, _, _ in judged})
    # Every query of the runs judged: the qrels repeat the real judgements under the runs' query ids.
    repeated = (queries * (EVALUATED_QUERIES // len(queries) + 1))[:EVALUATED_QUERIES]
    by_query = {query: [(doc, score) for q, doc, score in judged if q == query] for query in queries}
    with open(qrels, "w", encoding="utf-8") as handle:
        for number, query in enumerate(repeated):
            tag = f"{query}-{number}" if number >= len(queries) else query
            handle.writelines(f"{tag} 0 {doc} {score}\n" for doc, score in by_query[query])
    adopt(qrels)
    with open(data / "corpus.jsonl", "rb") as handle:
        documents = sum(1 for _ in handle)
    runs = evaluation_runs(work, queries, documents, seed)
    names = [run.stem for run in runs]
    output = work / "metrics.json"
    seconds, rss, written, checks = measure("evaluate", [PYTHON, str(SCRIPTS / "evaluate_dataset.py"), "--dataset", "msmarco-sized",
        "--systems", *names, "--runs", *map(str, runs), "--qrels", str(qrels), "--metrics", "ndcg@10", "mrr@10", "recall@100",
        "recall@1000", "--output", str(output)], [output], work / "evaluate.log", root / "numba-cache")  # fmt: skip
    print(f"  {'(any)':>9} {'evaluate 20 x 7,000 x 1,000':34} {seconds:9.2f} s {rss:9.1f} MB", flush=True)
    return Measurement(0, EVALUATED_QUERIES, "evaluate 20 systems x 7,000 x 1,000", round(seconds, 2), round(rss, 1), written,
                       "MS MARCO dev-sized runs, one job", round(checks, 3))  # fmt: skip


def _typed(row: dict[str, str]) -> dict[str, object]:
    return {**row, "documents": int(row["documents"]), "queries": int(row["queries"]), "seconds": float(row["seconds"]),
            "peak_rss_mb": float(row["peak_rss_mb"]), "bytes_written": int(row["bytes_written"]),
            "integrity_seconds": float(row.get("integrity_seconds") or 0.0),
            "premade_lines_seconds": float(row.get("premade_lines_seconds") or 0.0)}  # fmt: skip


def growth_exponents(rows: list[Measurement], field: str) -> dict[str, float]:
    """Per stage, the slope of log(value) against log(documents) over the sizes measured."""
    exponents = {}
    for stage in sorted({row.stage for row in rows if row.documents}):
        points = [(row.documents, getattr(row, field)) for row in rows if row.stage == stage and row.documents]
        if len(points) >= 2 and all(value > 0 for _, value in points):
            sizes, values = zip(*points, strict=True)
            exponents[stage] = float(np.polyfit(np.log(sizes), np.log(values), 1)[0])
    return exponents


def plot(rows: list[Measurement], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(15, 9))
    stages = sorted({row.stage for row in rows if row.documents})
    colours, markers = plt.get_cmap("tab20").colors, "osD^v<>pPhX*dH"  # type: ignore[attr-defined]
    for axis, field, label in ((axes[0], "seconds", "wall time (s)"), (axes[1], "peak_rss_mb", "peak memory (MB)")):
        exponents = growth_exponents(rows, field)
        for number, stage in enumerate(stages):
            points = sorted((row.documents, getattr(row, field)) for row in rows if row.stage == stage and row.documents)
            style = {"color": colours[number % len(colours)], "marker": markers[number % len(markers)]}
            exponent = f" (N^{exponents[stage]:.2f})" if stage in exponents else ""
            axis.plot(*zip(*points, strict=True), label=f"{stage}{exponent}", **style)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("documents (N)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    figure.suptitle("beirflow stages against corpus size (bench/scaling.py); legends: the fitted growth exponent")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--root", type=Path, default=Path("/tmp/beirflow-scaling"), help="where data and outputs go (kept between runs)"
    )
    parser.add_argument("--csv", type=Path, default=REPO / "bench" / "scaling.csv")
    parser.add_argument("--plot", type=Path, default=REPO / "bench" / "scaling.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--premade-lines",
        action="store_true",
        help="measure each stage that writes a run again with its lines copied, not formatted: the bound of its writing",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=(),
        help="measure again only the stages whose names contain these words; other rows of --csv stay",
    )
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    models = build_tiny_minilm_pair(args.root / "models")
    # The run writer's C code is built once per working directory by the first job that writes a run; here
    # before any stage's clock starts.
    os.environ[compiled.CACHE_VARIABLE] = str(args.root / "compiled")
    if compiled.library() is None:
        print("no C compiler: the stages format their runs with Arrow (beirflow/runs/compiled.py)")
    only = tuple(args.only)
    # ranx compiles its code with numba on first use (about a minute here); the workflow caches it once per
    # workdir, so the measurements do too: a first pass at 2,000 documents fills the cache and is not kept.
    if not only:
        run_size(2_000, 200, args.root, models, args.seed)
    rows: list[Measurement] = []
    for documents in args.sizes:
        rows += run_size(documents, QUERIES_FOR.get(documents, 1_000), args.root, models, args.seed, only, args.premade_lines)
    if not only or any(part in "evaluate 20 systems" for part in only):
        rows.append(evaluation_at_msmarco_size(args.root, args.root / f"data-{args.sizes[-1]}", args.seed))
    if only:  # the rows measured now take their stage's place, the others are kept
        measured = {(row.documents, row.stage): row for row in rows}
        with open(args.csv, encoding="utf-8") as handle:
            earlier = [Measurement(**_typed(row)) for row in csv.DictReader(handle)]  # type: ignore[arg-type]
        rows = [measured.pop((row.documents, row.stage), row) for row in earlier] + list(measured.values())
    with open(args.csv, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    plot(rows, args.plot)
    print(
        f"\nwrote {args.csv} and {args.plot}\ngrowth exponents (time, memory) over {', '.join(f'{size:,}' for size in args.sizes)} documents:"
    )
    time_exponents, memory_exponents = growth_exponents(rows, "seconds"), growth_exponents(rows, "peak_rss_mb")
    for stage, exponent in time_exponents.items():
        print(f"  {stage:40} time N^{exponent:5.2f}   memory N^{memory_exponents.get(stage, float('nan')):5.2f}")


if __name__ == "__main__":
    main()
