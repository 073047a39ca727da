"""Delete an encoder's document vectors once every search over them has run (rule drop_embeddings,
for dense systems with ``keep_embeddings: false``). The ids and the encode jobs' records stay (the
cost table reads the records); the marker says what was deleted and how many bytes it freed. A later
search over these vectors makes Snakemake encode the corpus again first."""

import argparse
import json
import logging
from pathlib import Path

from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.cli import run_stage
from beirflow.workflow.integrity import record_path

log = logging.getLogger("beirflow.drop_embeddings")


def drop(args: argparse.Namespace) -> None:
    deleted = []
    for path in args.vectors:
        if path.is_file():
            size = path.stat().st_size
            path.unlink()
            record_path(path).unlink(missing_ok=True)
            deleted.append({"file": str(path), "bytes": size})
    freed = sum(entry["bytes"] for entry in deleted)
    log.info(
        "deleted %d vector file(s), %.1f MB, after the searches %s", len(deleted), freed / 1e6, ", ".join(map(str, args.runs))
    )
    record = {
        "dataset": args.dataset,
        "encoder": args.encoder,
        "deleted": deleted,
        "bytes_freed": freed,
        "after": [str(run) for run in args.runs],
    }
    with atomic_write(args.output) as handle:
        handle.write(json.dumps(record, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vectors", nargs="+", required=True, type=Path, help="the corpus shards' .npy files")
    parser.add_argument("--runs", nargs="+", required=True, type=Path, help="the searches that read them, all complete")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--output", required=True, type=Path, help="the marker: what was deleted, bytes freed")
    args = parser.parse_args()
    run_stage("drop_embeddings", f"{args.dataset}/{args.encoder}", lambda: drop(args))


if __name__ == "__main__":
    main()
