"""Deterministic shards: contiguous slices of a JSONL file in file order.

Shard ``i`` of size ``n`` holds records ``[i*n, (i+1)*n)``; the same file and size always give
the same shards, and concatenating the shards in order gives the file back, byte for byte
apart from line endings. Query shards feed the rerank jobs, document shards the encoders.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path

from beirflow.data.beir import iter_jsonl
from beirflow.workflow.atomic import atomic_path
from beirflow.workflow.errors import ConfigError, DataError
from beirflow.workflow.integrity import Writer, verify_member

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


def _normalised_lines(path: Path) -> Iterator[str]:
    for _, record in iter_jsonl(path):
        yield json.dumps(record, ensure_ascii=False) + "\n"


def write_shards(
    source: Path, output_dir: Path, per_shard: int, expected_shards: int | None = None, writer: Writer | None = None
) -> int:
    """Split ``source`` (JSONL) into ``output_dir/NNNN.jsonl``; returns the number of shards.

    ``expected_shards`` is what the DAG was planned with; a different count means the data
    is not what the plan assumed, and downstream jobs would miss shards.
    """
    shard_count(0, per_shard)  # a shard size below 1 stops here
    members: dict[str, dict[str, int]] = {}
    writer = writer or Writer("shard_jsonl", source.parent.name, shard=output_dir.name)
    with atomic_path(output_dir, check=lambda _: {"records": records, "members": members}, writer=writer) as temporary:
        temporary.mkdir(parents=True)
        records, lines = 0, _normalised_lines(source)
        # Line by line, never a whole shard in memory (a shard of 100,000 SciFact-like documents held 657 MB).
        for index in itertools.count():
            path = temporary / f"{shard_name(index)}.jsonl"
            with open(path, "w", encoding="utf-8") as handle:
                written = 0
                for line in itertools.islice(lines, per_shard):
                    handle.write(line)
                    written += 1
            records += written
            members[path.name] = {"records": written}
            if written < per_shard:
                if written == 0 and index > 0:
                    path.unlink()  # the records filled the shards before it exactly
                    del members[path.name]
                break
        count = shard_count(records, per_shard)
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


def verified_shard(shard_file: Path) -> int:
    """Check one shard file and its folder's manifest against the folder's record before it is read;
    returns the records it holds."""
    return int(verify_member(shard_file.parent, shard_file.name)["records"])


def join_shards(shard_dir: Path) -> Iterator[dict]:
    """Yield the records of every shard in order: the inverse of :func:`write_shards`."""
    manifest = json.loads((shard_dir / MANIFEST).read_text(encoding="utf-8"))
    for index in range(manifest["shards"]):
        for _, record in iter_jsonl(shard_path(shard_dir, shard_name(index))):
            yield record
