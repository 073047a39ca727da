"""Merge CQADupStack's 12 forums into one BEIR-layout folder (rule merge_cqadupstack)."""

import argparse
import logging
from pathlib import Path

from beirflow.beir import BeirFiles
from beirflow.cli import run_stage
from beirflow.merge import merge_forums
from beirflow.registry import CQADUPSTACK_FORUMS


def run(args: argparse.Namespace) -> None:
    forums = [(forum, BeirFiles(args.archive_folder / forum, args.split)) for forum in CQADUPSTACK_FORUMS]
    counts = merge_forums(forums, BeirFiles(args.output, args.split))
    logging.info("merged %d forums: %s", len(forums), counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archive-folder", required=True, type=Path, help="the unpacked cqadupstack folder (one subfolder per forum)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", required=True, type=Path, help="folder for corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    parser.add_argument("--dataset", required=True)
    args = parser.parse_args()
    run_stage("merge_cqadupstack", f"dataset={args.dataset}", lambda: run(args))


if __name__ == "__main__":
    main()
