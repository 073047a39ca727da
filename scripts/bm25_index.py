"""Build a Lucene index of a BEIR corpus with Anserini (rule bm25_index), once per dataset and field layout."""

import argparse
import logging
from pathlib import Path

from beirflow.bm25.lucene import COLLECTIONS, build_index, indexable_documents
from beirflow.runs.checks import check_lucene_index
from beirflow.workflow.atomic import atomic_path
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import Writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--fields", required=True, choices=sorted(COLLECTIONS))
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-mb", type=int, help="memory the job may use; sizes the JVM heap")
    parser.add_argument("--dataset", default="?")
    args = parser.parse_args()

    def index() -> None:
        expected = indexable_documents(args.corpus, args.fields)
        writer = Writer("bm25_index", args.dataset, shard=args.fields)
        with atomic_path(args.index, check=lambda built: check_lucene_index(built, expected), writer=writer) as temporary:
            build_index(args.corpus, temporary, args.fields, args.threads, args.memory_mb)
        logging.info("%s: %d documents in the %s index %s", args.dataset, expected, args.fields, args.index)

    run_stage("bm25_index", f"dataset={args.dataset} index={args.fields}", index)


if __name__ == "__main__":
    main()
