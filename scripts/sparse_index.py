"""Index a dataset's SPLADE vectors, every shard, into one Anserini impact index (rule sparse_index)."""

import argparse
from pathlib import Path

from beirflow.bm25.lucene import index_document_count
from beirflow.sparse.splade import build_impact_index
from beirflow.workflow.atomic import atomic_path
from beirflow.workflow.cli import run_stage
from beirflow.workflow.errors import DataError
from beirflow.workflow.integrity import Writer, verify


def index(args: argparse.Namespace) -> None:
    documents = sum(int(verify(path)["documents"]) for path in args.vectors)

    def check(folder: Path) -> dict[str, int]:
        indexed = index_document_count(folder)
        if indexed != documents:
            raise DataError(folder, f"indexes {indexed} documents, the vectors hold {documents}")
        return {"documents": indexed}

    writer = Writer("sparse_index", args.dataset, args.encoder)
    with atomic_path(args.index, check=check, writer=writer) as folder:
        build_impact_index(args.vectors, folder, threads=args.threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vectors", required=True, nargs="+", type=Path, help="the shards' JsonVectorCollection files")
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--encoder", required=True)
    args = parser.parse_args()
    run_stage("sparse_index", f"dataset={args.dataset} encoder={args.encoder}", lambda: index(args))


if __name__ == "__main__":
    main()
