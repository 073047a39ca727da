"""Merge CQADupStack's 12 forums into one BEIR-layout folder in the data cache (rule merge_cqadupstack)."""

import argparse
import json
import logging
from pathlib import Path

from beirflow.data.beir import BeirFiles
from beirflow.data.download import cache_lock
from beirflow.data.registry import CQADUPSTACK_FORUMS
from beirflow.runs.merge import merge_forums
from beirflow.workflow.atomic import atomic_path, atomic_write
from beirflow.workflow.cli import run_stage


def run(args: argparse.Namespace) -> None:
    forums = [(forum, BeirFiles(args.archive_folder / forum, args.split)) for forum in CQADUPSTACK_FORUMS]
    # Under the archive's lock, as its download: another workflow sharing the cache either merged
    # it already (the folder is in place) or waits here; the folder appears whole, in one rename.
    with cache_lock(args.archive_folder):
        if args.output.is_dir():
            logging.info("%s is already in place (merged by another workflow sharing the cache)", args.output)
        else:
            with atomic_path(args.output) as temporary:
                counts = merge_forums(forums, BeirFiles(temporary, args.split))
            logging.info("merged %d forums: %s", len(forums), counts)
        with atomic_write(args.ready) as handle:
            json.dump({"folder": str(args.output), "forums": list(CQADUPSTACK_FORUMS)}, handle)
            handle.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--archive-folder", required=True, type=Path, help="the unpacked cqadupstack folder (one subfolder per forum)"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--output", required=True, type=Path, help="folder for corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    parser.add_argument(
        "--ready", required=True, type=Path, help="marker written once the folder is in place (the rule's output)"
    )
    parser.add_argument("--dataset", required=True)
    args = parser.parse_args()
    run_stage("merge_cqadupstack", f"dataset={args.dataset}", lambda: run(args))


if __name__ == "__main__":
    main()
