"""Fetch one model (and describe it) into the model cache, on the submit host (rule fetch_model).

The record it writes names the folder, the commit and every file's sha256; GPU jobs read it and
never talk to a hub."""

import argparse
import logging
from pathlib import Path

from beirflow.workflow.cli import run_stage
from beirflow.workflow.fetch import fetch_model
from beirflow.workflow.records import write_record


def fetch(args: argparse.Namespace) -> None:
    record = fetch_model(args.model, args.revision or None, args.key, args.marker)
    write_record(record, args.record)
    logging.info(
        "%s at %s: %d files, %.1f MB in %s", args.model, record.commit, len(record.files), record.total_bytes / 1e6, record.folder
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a Hugging Face id, a folder or package:<module>")
    parser.add_argument("--revision", default="", help="the commit (or branch) of a hub model")
    parser.add_argument("--key", required=True, help="the config key errors name (rerank.<system>.model, ...)")
    parser.add_argument(
        "--marker", default="config.json", help="the file the folder must hold (adapter_config.json for an adapter)"
    )
    parser.add_argument("--record", required=True, type=Path)
    args = parser.parse_args()
    run_stage("fetch_model", f"{args.key}={args.model}@{args.revision or '-'}", lambda: fetch(args))


if __name__ == "__main__":
    main()
