"""Write outputs to a temporary path, check them and rename, so nothing half-done or wrong looks done.

Snakemake treats an existing output as done; a file or index directory only ever appears under
its final name once it is complete and, where a check is given, once the check passed (a Lucene
index that opens with the corpus's count, embeddings with their rows, a run file that parses).

Several writers may work beside one another: two workflows sharing a data cache, jobs on several
hosts of a shared file system. A temporary is named by host and process, and a writer removes only
its own leftovers or those of a process that is provably dead (same host, no such process); a
live writer's temporary is never touched. A file replaces its predecessor in one rename, so a
reader never finds the final name missing.

Durable: the temporary's bytes (every file of a folder) are fsynced before the rename and the folder
holding the final name after it, so a node that crashes right after a job cannot leave an empty or
short file under a final name. Where a writer is given, the output's record
(:mod:`beirflow.workflow.integrity`) is published before the output itself: its size, content digest and the counts the
check read back.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from beirflow.workflow.errors import BeirflowError
from beirflow.workflow.integrity import Spent, Writer, describe, digests, write_record

# A check reads the written output back; what it returns (counts such as queries and hits) goes into the record.
Check = Callable[[Path], Mapping[str, object] | None]


class OutputCheckError(BeirflowError):
    """An output that was written but failed its check: nothing was published under its name."""


def _host() -> str:
    # Dots and dashes are kept; anything else (none in a sane hostname) would break the name's parse.
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _temporary_sibling(path: Path, kind: str = "tmp") -> Path:
    # Same directory, so the final rename stays on one file system and is atomic.
    return path.with_name(f".{path.name}.{kind}-{_host()}-{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _provably_abandoned(name: str, final: Path) -> bool:
    """A temporary of ``final`` left by this process or by a dead process on this host."""
    match = re.fullmatch(rf"\.{re.escape(final.name)}\.(?:tmp|old)-(?P<host>[A-Za-z0-9._-]+)-(?P<pid>\d+)", name)
    if match is None or match["host"] != _host():
        return False  # another host's (or an unknown writer's): it may be alive
    pid = int(match["pid"])
    return pid == os.getpid() or not _pid_alive(pid)


def remove_abandoned_temporaries(final: Path) -> None:
    for candidate in final.parent.glob(f".{final.name}.*-*"):
        if _provably_abandoned(candidate.name, final):
            _remove(candidate)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def fsync_path(path: Path) -> None:
    """Flush a file, or every file and folder under a folder, to disk."""
    if path.is_dir() and not path.is_symlink():
        for folder, _, files in os.walk(path):
            for name in files:
                fsync_path(Path(folder) / name)
            _fsync_descriptor(Path(folder), os.O_RDONLY | os.O_DIRECTORY)
    elif path.is_file():
        _fsync_descriptor(path, os.O_RDONLY)


def _fsync_descriptor(path: Path, flags: int) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _publish(temporary: Path, final: Path) -> None:
    """Renames the fsynced ``temporary`` to ``final``, and fsyncs the rename."""
    if temporary.is_dir() and not temporary.is_symlink() and final.is_dir():
        # A directory cannot replace a non-empty one in one rename: move the old one aside first.
        aside = _temporary_sibling(final, "old")
        os.replace(final, aside)
        os.replace(temporary, final)
        _remove(aside)
    else:
        os.replace(temporary, final)
    _fsync_descriptor(final.parent, os.O_RDONLY | os.O_DIRECTORY)  # the rename itself


@contextmanager
def atomic_path(path: str | Path, check: Check | None = None, writer: Writer | None = None) -> Iterator[Path]:
    """Yield a temporary path to fill; on success ``check`` (if any) reads it, then it replaces ``path``.

    A check that raises leaves nothing under ``path`` (a previous version there is removed, since
    it no longer matches what the job was asked to make) and raises OutputCheckError naming ``path``.
    With a ``writer``, the output's record (its digest and the counts ``check`` returned) is published first.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temporaries(final)
    temporary = _temporary_sibling(final)
    try:
        yield temporary
        counts: Mapping[str, object] | None = None
        # The record's digests are taken, and the bytes flushed to disk, on other threads while the check reads the
        # output back: xxhash, fsync and most checks (SQLite, Lucene, NumPy) release the GIL, so on two cores
        # neither costs wall time beyond the check's.
        with ThreadPoolExecutor(max_workers=2) as pool:
            flushed = pool.submit(fsync_path, temporary)
            known = pool.submit(digests, temporary) if writer is not None else None
            if check is not None:
                try:
                    counts = check(temporary)
                except Exception as error:
                    _remove(final)
                    reason = str(error).replace(str(temporary), str(final))
                    raise OutputCheckError(f"{final}: the output failed its check and was not published: {reason}") from None
            waited = time.perf_counter()
            taken = known.result() if known is not None else None
            Spent.seconds += time.perf_counter() - waited  # the wall time the digests add beyond the check
            flushed.result()
        if writer is not None:
            write_record(final, describe(temporary, writer, counts, taken))
        _publish(temporary, final)
    finally:
        if temporary.exists() or temporary.is_symlink():
            _remove(temporary)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", check: Check | None = None, writer: Writer | None = None) -> Iterator[IO]:
    """Open a temporary file for writing; it is checked, recorded (with a ``writer``), fsynced and renamed to
    ``path`` on success."""
    with (
        atomic_path(path, check, writer) as temporary,
        open(temporary, mode, encoding=None if "b" in mode else "utf-8") as handle,
    ):
        yield handle
        handle.flush()
