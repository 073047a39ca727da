"""What checking a model's files against its fetch record costs a shard job, at monoT5-3B's size.

    python bench/model_check.py                      # an 11.4 GB weight file, as monoT5-3B's fp32 checkpoint
    python bench/model_check.py --gigabytes 2        # a quicker pass

A folder holding one file of random bytes of the checkpoint's size (castorini/monot5-3b-msmarco-10k:
2.85B parameters in fp32), described as rule fetch_model describes a model. Then the check every GPU job
makes when it loads the model (beirflow.workflow.fetch.check_model_files), three times: the first job on a node
(every file hashed), a later job on that node (sizes only: the hash is remembered for that file
version), and a job after the file changed (hashed again, and refused). Prints each against a monoT5-3B
shard job's time: 100 queries x 1,000 candidates at the pairs per second docs/performance.md gives
for an H100.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

MONOT5_3B_PAIRS_PER_SECOND = 245  # one H100, bf16 (docs/performance.md, bench/gpu_throughput.py)
SHARD_PAIRS = 100 * 1000  # shards.queries_per_shard x the paper's depth


def write_weights(path: Path, gigabytes: float) -> None:
    block = os.urandom(1 << 24)
    remaining = int(gigabytes * 1e9)
    with open(path, "wb") as handle:
        while remaining > 0:
            handle.write(block[: min(len(block), remaining)])
            remaining -= len(block)


def timed(check: object, *args: object) -> float:
    started = time.perf_counter()
    check(*args)  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=11.4, help="the weight file's size (monoT5-3B in fp32: 11.4)")
    parser.add_argument("--root", type=Path, default=None, help="where the model folder goes (default: a temporary folder)")
    args = parser.parse_args()

    from beirflow.workflow.errors import DataError
    from beirflow.workflow.fetch import check_model_files, describe_files
    from beirflow.workflow.records import ModelRecord

    root = Path(tempfile.mkdtemp(prefix="beirflow-model-check-", dir=args.root))
    try:
        folder = root / "monot5-3b"
        folder.mkdir()
        (folder / "config.json").write_text('{"model_type": "t5"}\n')
        weights = folder / "model.safetensors"
        write_weights(weights, args.gigabytes)
        record = ModelRecord("castorini/monot5-3b-msmarco-10k", None, "bench", "folder", str(folder), describe_files(folder))
        os.environ["BEIRFLOW_VERIFIED_DIR"] = str(root / "verified")
        record_file = root / "record.json"
        first = timed(check_model_files, record, record_file)
        later = timed(check_model_files, record, record_file)
        with open(weights, "r+b") as handle:  # one byte flipped, the size kept
            handle.seek(1000)
            byte = handle.read(1)[0]
            handle.seek(1000)
            handle.write(bytes([byte ^ 0xFF]))
        started = time.perf_counter()
        try:
            check_model_files(record, record_file)
            raise SystemExit("a changed weight file passed its check")
        except DataError:
            changed = time.perf_counter() - started
        shard_seconds = SHARD_PAIRS / MONOT5_3B_PAIRS_PER_SECOND
        print(
            f"weights: {args.gigabytes:.1f} GB; a monoT5-3B shard job: {SHARD_PAIRS:,} pairs at {MONOT5_3B_PAIRS_PER_SECOND} pairs/s = {shard_seconds:.0f} s"
        )
        for what, seconds in (
            ("first job on a node (hashed)", first),
            ("later job on the node (sizes)", later),
            ("after the file changed (refused)", changed),
        ):
            print(f"  {what:34} {seconds:9.4f} s  {100 * seconds / shard_seconds:6.3f}% of the shard job")
        print(f"  hash rate: {args.gigabytes / first:.2f} GB/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
