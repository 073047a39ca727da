"""Deterministic shards: contiguous slices of a JSONL file in file order.

Shard ``i`` of size ``n`` holds records ``[i*n, (i+1)*n)``; the same file and size always give
the same shards, and concatenating the shards in order gives the file back, byte for byte
apart from line endings. Query shards feed the rerank jobs, document shards the encoders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from beirflow.atomic import atomic_path
from beirflow.beir import iter_jsonl
from beirflow.errors import ConfigError, DataError

MANIFEST = "manifest.json"
MAX_SHARDS = 10_000  # shard ids are four digits


def shard_count(items: int, per_shard: int) -> int:
    if per_shard < 1:
        raise ValueError("shard size must be at least 1")
    count = max(1, math.ceil(items / per_shard))
    if count > MAX_SHARDS:
        raise ConfigError(
            f"{items} items in shards of {per_shard} make {count} shards; at most {MAX_SHARDS}: raise the shard size"
        )
    return count


def shard_ids(count: int) -> list[str]:
    return [shard_name(index) for index in range(count)]


def shard_name(index: int) -> str:
    return f"{index:04d}"


def _chunks(lines: Iterable[str], per_shard: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == per_shard:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _normalised_lines(path: Path) -> Iterator[str]:
    for _, record in iter_jsonl(path):
        yield json.dumps(record, ensure_ascii=False) + "\n"


def write_shards(source: Path, output_dir: Path, per_shard: int, expected_shards: int | None = None) -> int:
    """Split ``source`` (JSONL) into ``output_dir/NNNN.jsonl``; returns the number of shards.

    ``expected_shards`` is what the DAG was planned with; a different count means the data
    is not what the plan assumed, and downstream jobs would miss shards.
    """
    with atomic_path(output_dir) as temporary:
        temporary.mkdir(parents=True)
        count = 0
        records = 0
        for index, chunk in enumerate(_chunks(_normalised_lines(source), per_shard)):
            (temporary / f"{shard_name(index)}.jsonl").write_text("".join(chunk), encoding="utf-8")
            count += 1
            records += len(chunk)
        if count == 0:
            (temporary / f"{shard_name(0)}.jsonl").write_text("", encoding="utf-8")
            count = 1
        if expected_shards is not None and count != expected_shards:
            raise DataError(
                source,
                f"{records} records make {count} shards of {per_shard}, but the DAG was planned with {expected_shards}; the data changed or the known count is wrong",
            )
        manifest = {"source": str(source), "records": records, "per_shard": per_shard, "shards": count}
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return count


def shard_path(shard_dir: Path, shard: str) -> Path:
    return shard_dir / f"{shard}.jsonl"


def join_shards(shard_dir: Path) -> Iterator[dict]:
    """Yield the records of every shard in order: the inverse of :func:`write_shards`."""
    manifest = json.loads((shard_dir / MANIFEST).read_text(encoding="utf-8"))
    for index in range(manifest["shards"]):
        for _, record in iter_jsonl(shard_path(shard_dir, shard_name(index))):
            yield record
