"""Records of what a job wrote, and the check every job that reads it makes first.

A cached file is trusted only while it is what its producer wrote. Each published output has a record
beside it, ``<name>.record.json``: its size and content digest (xxh3-128, :mod:`beirflow.workflow.digest`; a
folder's: every file's), the counts its output check read back from it (queries, hits, rows, dimension,
...) and its writer (rule, dataset, system, shard). A job compares each input with its record, and with what the plan says the input must
hold, before it reads it. A difference stops the job with the file, what differs and the command that
rebuilds it; nothing is moved or deleted (docs/integrity.md says why).

Inputs that many jobs read whole (a document store, a Lucene index, model weights) are hashed once per
node and file version: a check that passed is remembered under ``BEIRFLOW_VERIFIED_DIR``, keyed by the
file's inode, size, modification and change times, so a file changed in any of these is hashed again.
Their size is checked by every job. The standard library and xxhash only: every environment imports it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from beirflow.workflow.digest import CONTENT_DIGEST, content_digest, file_digest
from beirflow.workflow.errors import DataError, rebuild_hint

RECORD_SUFFIX = ".record.json"
VERIFIED_DIR = "BEIRFLOW_VERIFIED_DIR"

Counts = dict[str, Any]


class Spent:
    """What this process spent on records and their checks, logged when a stage ends (bench/scaling.py
    reads it to price the checks against each stage's time)."""

    seconds = 0.0
    files = 0


def _timed(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            Spent.seconds += time.perf_counter() - started
            Spent.files += 1

    return timed


class IntegrityError(DataError):
    """An input that is not what its producer wrote (or what the plan says it holds): no score is made from it."""


@dataclass(frozen=True)
class Writer:
    """Who wrote an output: the rule and the job's wildcards."""

    rule: str
    dataset: str
    system: str | None = None
    shard: str | None = None

    def describe(self) -> str:
        named = ", ".join(f"{key}={value}" for key, value in asdict(self).items() if key != "rule" and value is not None)
        return f"rule {self.rule} ({named})"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Writer:
        return cls(str(data["rule"]), str(data["dataset"]), data.get("system"), data.get("shard"))


def record_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + RECORD_SUFFIX)


# Snakemake's own file in every directory() output, written after the job.
SNAKEMAKE_TIMESTAMP = ".snakemake_timestamp"


def _files(path: Path) -> Iterator[tuple[str, Path]]:
    if path.is_dir():
        for member in sorted(path.rglob("*")):
            if member.is_file() and member.name != SNAKEMAKE_TIMESTAMP:
                yield member.relative_to(path).as_posix(), member
    else:
        yield path.name, path


def digests(path: Path) -> dict[str, str]:
    """The content digest of ``path``, or of every file of a folder, by the name its record gives it."""
    return {name: content_digest(member) for name, member in _files(path)}


@_timed
def describe(
    path: Path, writer: Writer, counts: Mapping[str, Any] | None = None, known: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The record of ``path`` (a file or a folder) as it is now; ``known`` holds digests :func:`digests` took
    of it already (beside the output's check, on another core)."""
    known = known or digests(path)
    files = {name: {"size": member.stat().st_size, CONTENT_DIGEST: known[name]} for name, member in _files(path)}
    record: dict[str, Any] = {"writer": asdict(writer), "kind": "folder" if path.is_dir() else "file"}
    if path.is_dir():
        record["files"] = files
    else:
        record.update(files[path.name])
    record["counts"] = dict(counts or {})
    return record


def write_record(final: Path, record: Mapping[str, Any]) -> None:
    """The record of ``final``, published beside it (durably, as every output is)."""
    from beirflow.workflow.atomic import atomic_write

    with atomic_write(record_path(final)) as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
        handle.write("\n")


def read_record(path: Path) -> dict[str, Any]:
    """The record beside ``path``; a missing or unreadable one names the file and its rebuild."""
    sidecar = record_path(path)
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        Writer.from_dict(record["writer"])
        return record
    except FileNotFoundError:
        reason = (
            f"it has no record ({sidecar.name}): it was not written by this workflow's job, or its record was lost"
            f" (a file you made yourself is adopted with: python scripts/adopt_file.py {path})"
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = f"its record {sidecar} cannot be read ({type(error).__name__}: {error})"
    raise IntegrityError(path, f"{reason}; {rebuild_hint(path)}")


def _differs(path: Path, record: Mapping[str, Any], difference: str) -> IntegrityError:
    writer = Writer.from_dict(record["writer"]).describe()
    return IntegrityError(path, f"not what {writer} wrote: {difference}; {rebuild_hint(path)}")


def _check_file(path: Path, shown: Path, expected: Mapping[str, Any], record: Mapping[str, Any], once_per_node: bool) -> None:
    if not path.is_file():
        raise _differs(shown, record, f"{path} is missing")
    size = path.stat().st_size
    if size != expected["size"]:
        raise _differs(shown, record, f"{_name(path, shown)}{size:,} bytes, recorded {expected['size']:,}")
    recorded = expected[CONTENT_DIGEST]
    if once_per_node and _verified_before(path, recorded):
        return
    actual = content_digest(path)
    if actual != recorded:
        raise _differs(shown, record, f"{_name(path, shown)}content digest {actual[:12]}..., recorded {recorded[:12]}...")
    if once_per_node:
        _remember_verified(path, recorded)


def _name(path: Path, shown: Path) -> str:
    return "" if path == shown else f"{path.relative_to(shown).as_posix()}: "


@_timed
def verify(path: str | Path, expect: Mapping[str, Any] | None = None, *, once_per_node: bool = False) -> Counts:
    """Check ``path`` against its record before reading it; returns the recorded counts.

    ``expect`` holds counts the plan knows (a shard's documents, the dataset's queries), compared with the
    record's. ``once_per_node`` hashes a file version once per node (sizes are checked every time)."""
    path = Path(path)
    record = read_record(path)
    if record.get("kind") == "folder":
        if not path.is_dir():
            raise _differs(path, record, "the folder is missing")
        present = {name for name, _ in _files(path)}
        absent = sorted(set(record["files"]) - present)
        extra = sorted(present - set(record["files"]))
        if absent:
            raise _differs(path, record, f"{len(absent)} of its files missing, e.g. {absent[0]}")
        if extra:
            raise _differs(path, record, f"{len(extra)} files it did not write, e.g. {extra[0]}")
        for name, expected in record["files"].items():
            _check_file(path / name, path, expected, record, once_per_node)
    else:
        _check_file(path, path, record, record, once_per_node)
    counts: Counts = record.get("counts", {})
    for key, value in (expect or {}).items():
        if counts.get(key) != value:
            raise _differs(path, record, f"it holds {counts.get(key)} {key}, the plan {value}")
    return counts


@_timed
def verify_member(folder: str | Path, member: str, expect: Mapping[str, Any] | None = None) -> Counts:
    """Check one file of a recorded folder (a shard of a sharded output) and the folder's own manifest,
    not the folder's other files: a shard job's check costs its shard, not the corpus. Returns the
    member's recorded counts (the folder record's ``members``)."""
    folder = Path(folder)
    record = read_record(folder)
    if record.get("kind") != "folder":
        raise IntegrityError(folder, f"its record describes a file, not a folder; {rebuild_hint(folder)}")
    for name in (member, *(name for name in record["files"] if name.endswith(".json"))):
        if name not in record["files"]:
            raise _differs(folder, record, f"it wrote no {name}")
        _check_file(folder / name, folder, record["files"][name], record, once_per_node=False)
    counts: Counts = record.get("counts", {}).get("members", {}).get(member, {})
    for key, value in (expect or {}).items():
        if counts.get(key) != value:
            raise _differs(folder, record, f"{member} holds {counts.get(key)} {key}, the plan {value}")
    return counts


# ---- remembered checks (once per node and file version)


def _verified_key(path: Path, digest: str) -> str | None:
    directory = os.environ.get(VERIFIED_DIR)
    if not directory:
        return None
    status = path.stat()
    identity = [str(path.resolve()), status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns, digest]
    return hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()


def _marker(key: str) -> Path:
    return Path(os.environ[VERIFIED_DIR]) / socket.gethostname() / key


def _verified_before(path: Path, digest: str) -> bool:
    key = _verified_key(path, digest)
    return key is not None and _marker(key).is_file()


def _remember_verified(path: Path, digest: str) -> None:
    key = _verified_key(path, digest)
    if key is None:
        return
    marker = _marker(key)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # a read-only cache only costs the next job a hash


@_timed
def verify_file_once(path: Path, size: int, digest: tuple[str, str], describe_as: str, restore: str) -> None:
    """A file described elsewhere (a model's weights in its fetch record) by its size and ``digest``,
    ``(algorithm, hex)`` with the algorithm ``xxh3_128`` or ``sha256``: its size checked by every job, its
    content once per node and file version."""
    if not path.is_file():
        raise DataError(path, f"{describe_as}: the file is missing; {restore}")
    actual_size = path.stat().st_size
    if actual_size != size:
        raise DataError(path, f"{describe_as}: {actual_size:,} bytes, recorded {size:,}; {restore}")
    algorithm, recorded = digest
    if _verified_before(path, recorded):
        return
    actual = content_digest(path) if algorithm == CONTENT_DIGEST else file_digest(path, algorithm)
    if actual != recorded:
        raise DataError(path, f"{describe_as}: {algorithm} {actual[:12]}..., recorded {recorded[:12]}...; {restore}")
    _remember_verified(path, recorded)


# ---- files changed on purpose

BY_HAND = "by hand"


def adopt(path: str | Path, dataset: str = "-") -> dict[str, Any]:
    """Record ``path`` as it is now, written by hand: a file a user changed on purpose (a run edited to try
    something) is then read as theirs, and what reads it says so (``evaluate`` marks the system). A run is
    checked as a job's would be first, and its queries and hits recorded."""
    path = Path(path)
    record = describe(path, Writer(BY_HAND, dataset), _adopted_counts(path))
    write_record(path, record)
    return record


def _adopted_counts(path: Path) -> Counts:
    """What a job's output check would record of the file: a run's queries and hits, embeddings' rows and
    dimension (every value finite), an ids file's rows."""
    if path.suffix == ".trec":
        from beirflow.runs.checks import check_run_file

        return check_run_file(path)
    if path.suffix == ".npy":
        from beirflow.dense.search import check_embeddings, read_array

        vectors = read_array(path)
        return check_embeddings(path, len(vectors), int(vectors.shape[1]) if vectors.ndim == 2 else -1)
    if path.suffix == ".ids":
        return {"rows": len(path.read_text(encoding="utf-8").splitlines())}
    return {}


def written_by_hand(path: str | Path) -> bool:
    return str(read_record(Path(path))["writer"]["rule"]) == BY_HAND
