"""File checksums, read in chunks by hashlib itself so a multi-GB file never sits in memory.

Two kinds: ``sha256`` where a digest is compared with someone else's (a download's published checksum,
the hub's LFS sha256 of a weight file, the leaderboard's run digests that anyone can recompute with
``sha256sum``), and :func:`content_digest` for the records beside every output
(:mod:`beirflow.workflow.integrity`), which only beirflow compares: xxh3-128 hashes at about 11 GB/s here against
sha256's 1.7, and the records must cost under 2% of stages that do little but write gigabytes (a corpus
split into shards, the document store; ``bench/scaling.py``). It finds accidental damage as surely; it
is not meant to resist someone forging a file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import xxhash

CONTENT_DIGEST = "xxh3_128"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def content_digest(path: Path) -> str:
    """The record's digest of a file: xxh3-128, as hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, xxhash.xxh3_128).hexdigest()


def sha256_and_content_digest(path: Path) -> tuple[str, str]:
    """Both digests of a file in one read (a model's weights: tens of GB on the submit host)."""
    sha256, content = hashlib.sha256(), xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(1 << 22)
        view = memoryview(buffer)
        while size := handle.readinto(buffer):
            sha256.update(view[:size])
            content.update(view[:size])
    return sha256.hexdigest(), content.hexdigest()
