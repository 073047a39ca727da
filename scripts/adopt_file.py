"""Adopt files changed by hand: record each as it is now, so the jobs that read it take it as yours.

Every job checks its inputs against the records their producers wrote and stops at a difference. A run
you edited on purpose is adopted with this command; the evaluation then scores it and marks the system
'edited by hand' in metrics.json. To undo, rebuild the file: snakemake --forcerun <file>.

    python scripts/adopt_file.py results/scifact/bm25/bm25-flat/run.trec
"""

import argparse
import logging
from pathlib import Path

from beirflow.workflow.cli import run_stage
from beirflow.workflow.digest import CONTENT_DIGEST
from beirflow.workflow.integrity import adopt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="the files to adopt as they are now")
    args = parser.parse_args()

    def adopt_all() -> None:
        for path in args.files:
            record = adopt(path)
            logging.info(
                "%s: adopted as written by hand (%s bytes, content digest %s)", path, record["size"], record[CONTENT_DIGEST][:12]
            )

    run_stage("adopt_file", " ".join(map(str, args.files)), adopt_all)


if __name__ == "__main__":
    main()
