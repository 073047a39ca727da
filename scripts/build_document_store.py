"""Write a dataset's corpus into a SQLite document store, texts by id (rule document_store)."""

import argparse
import logging
from pathlib import Path

from beirflow.rerank.docstore import build_document_store
from beirflow.runs.checks import validated_document_count
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import Writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--report", type=Path, help="prepare_dataset's report.json: the store must hold its document count")
    parser.add_argument("--dataset", default="?")
    args = parser.parse_args()

    def build() -> None:
        expected = validated_document_count(args.report) if args.report else None
        count = build_document_store(args.corpus, args.output, expected, Writer("document_store", args.dataset))
        logging.info("%s: %d documents in %s", args.dataset, count, args.output)

    run_stage("document_store", f"dataset={args.dataset}", build)


if __name__ == "__main__":
    main()
