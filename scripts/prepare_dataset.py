"""Validate a dataset in BEIR layout and write the split's judged queries, qrels and a report."""

import argparse
import json
import logging
from pathlib import Path

from beirflow.data.beir import BeirFiles, prepare_dataset, write_qrels_trec, write_queries_jsonl
from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.errors import DataError
from beirflow.workflow.integrity import Writer


def prepare(args: argparse.Namespace) -> None:
    prepared = prepare_dataset(args.dataset, BeirFiles(args.folder, args.split))
    report = prepared.report
    for what, declared, found in (
        ("documents", args.expected_documents, report.documents),
        ("queries", args.expected_queries, report.judged_queries),
    ):
        if declared is not None and declared != found:
            raise DataError(
                args.folder,
                f"config key datasets.{args.dataset}.{what} declares {declared:,}, the files hold {found:,}: correct the config",
            )
    if report.judged_queries == 0:
        raise DataError(
            BeirFiles(args.folder, args.split).qrels,
            f"split '{args.split}' holds no judged query (no judgement of a query the queries file has): nothing can be evaluated on it",
        )
    if report.judged_documents_missing_from_corpus:
        logging.warning(
            "%d judged documents are not in the corpus (e.g. %s); they count as relevant and unretrievable",
            report.judged_documents_missing_from_corpus,
            ", ".join(report.missing_document_examples[:3]),
        )
    writer = Writer("prepare_dataset", args.dataset)
    with atomic_write(args.queries_out, check=lambda _: {"queries": report.judged_queries}, writer=writer) as handle:
        write_queries_jsonl(prepared.queries, handle)
    qrels_counts = {
        "queries": report.judged_queries,
        "judgements": report.judgements,
        "relevant_judgements": report.relevant_judgements,
    }
    with atomic_write(args.qrels_out, check=lambda _: qrels_counts, writer=writer) as handle:
        write_qrels_trec(prepared.qrels, handle)
    with atomic_write(args.report_out) as handle:
        json.dump(report.to_dict(), handle, indent=2)
    logging.info(
        "%s/%s: %d documents, %d judged queries, %d judgements",
        args.dataset,
        args.split,
        report.documents,
        report.judged_queries,
        report.judgements,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--folder", required=True, type=Path, help="folder with corpus.jsonl, queries.jsonl, qrels/")
    parser.add_argument("--split", required=True)
    parser.add_argument("--queries-out", required=True, type=Path)
    parser.add_argument("--qrels-out", required=True, type=Path)
    parser.add_argument("--report-out", required=True, type=Path)
    parser.add_argument("--expected-documents", type=int, help="the count the config declares, checked against the files")
    parser.add_argument("--expected-queries", type=int, help="the judged queries the config declares")
    args = parser.parse_args()
    run_stage("prepare_dataset", f"dataset={args.dataset}", lambda: prepare(args))


if __name__ == "__main__":
    main()
