"""Download one BEIR zip, check its md5 and unzip it into the data cache (rule download_beir)."""

import argparse
from pathlib import Path

from beirflow.data.download import fetch_beir_archive
from beirflow.workflow.cli import run_stage


def fetch(args: argparse.Namespace) -> None:
    fetch_beir_archive(args.url, args.md5, args.target, marker=args.ready)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--md5", help="expected md5 of the zip; omit to skip the check")
    parser.add_argument("--target", required=True, type=Path, help="folder the zip's dataset folder becomes")
    parser.add_argument(
        "--ready", required=True, type=Path, help="marker written once the folder is in place (the rule's output)"
    )
    args = parser.parse_args()
    run_stage("download_beir", f"archive={args.target.name}", lambda: fetch(args))


if __name__ == "__main__":
    main()
