"""Download a BEIR zip once, check its md5, unzip it into the data cache.

A download whose checksum does not match is deleted; a zip is unpacked into a temporary
folder and renamed into place, so nothing half-unzipped ever sits under the final name.

Several workflows may share one data cache (``data_dir``): each archive is fetched under an
exclusive lock on ``.<name>.lock`` beside it, and a workflow that gets the lock after another
finished finds the folder in place and downloads nothing. The rule's output is a small marker in
the workflow's own results, never anything in the shared cache, because Snakemake deletes a job's
existing outputs before running it, which would pull them from under the other workflow's jobs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from beirflow.workflow.atomic import atomic_path, atomic_write
from beirflow.workflow.digest import file_digest
from beirflow.workflow.errors import ChecksumError, DataError

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def download(url: str, destination: Path, md5: str | None, timeout_s: float = 60.0) -> Path:
    """Fetch ``url`` to ``destination``; on a checksum mismatch the file is removed and ChecksumError raised."""
    with atomic_path(destination) as temporary:
        log.info("downloading %s", url)
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(temporary, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            received, last_report = 0, time.monotonic()
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                if time.monotonic() - last_report > 10:
                    log.info("  %.0f/%.0f MB", received / 1e6, total / 1e6)
                    last_report = time.monotonic()
        actual = file_digest(temporary, "md5")
        if md5 is not None and actual != md5:
            raise ChecksumError(f"{url}: md5 {actual} does not match the known {md5}; the download was removed")
        log.info("downloaded %.1f MB, md5 %s", received / 1e6, actual)
    return destination


def unzip_dataset(archive: Path, target: Path) -> Path:
    """Unpack a BEIR zip (one top-level folder, named like ``target``) into ``target``."""
    try:
        zipped = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(archive, "not a zip file") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipped, tempfile.TemporaryDirectory(prefix=f".{target.name}.unzip-", dir=target.parent) as scratch_dir:
        scratch = Path(scratch_dir)
        zipped.extractall(scratch)
        tops = [entry for entry in scratch.iterdir() if not entry.name.startswith("__MACOSX")]
        root = tops[0] if len(tops) == 1 and tops[0].is_dir() else scratch
        with atomic_path(target) as temporary:
            shutil.move(str(root), temporary)
    return target


@contextmanager
def cache_lock(target: Path) -> Iterator[None]:
    """An exclusive lock on ``.<name>.lock`` beside ``target``, for every writer of the data cache.

    flock is released when the file closes, also if the process dies. On NFS it is a lock on the
    server (Linux maps flock to POSIX locks there), so writers on several hosts exclude each other.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f".{target.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def fetch_beir_archive(url: str, md5: str | None, target: Path, keep_zip: bool = False, marker: Path | None = None) -> Path:
    """Download and unpack one BEIR archive into ``target`` (e.g. ``resources/beir/scifact``) unless it is there.

    ``marker``, the rule's output, is written under the same lock, so no other writer can find the
    folder being replaced or remove a marker half written."""
    with cache_lock(target):
        if target.is_dir():
            log.info("%s is already in place (fetched by another workflow sharing the cache)", target)
        else:
            _fetch(url, md5, target, keep_zip)
        if marker is not None:
            write_ready_marker(target, marker, url, md5)
        return target


def write_ready_marker(target: Path, marker: Path, url: str, md5: str | None) -> None:
    with atomic_write(marker) as handle:
        json.dump({"folder": str(target), "url": url, "md5": md5}, handle)
        handle.write("\n")


def _fetch(url: str, md5: str | None, target: Path, keep_zip: bool) -> Path:
    zip_path = target.with_name(target.name + ".zip")
    if not zip_path.exists():
        download(url, zip_path, md5)
    elif md5 is not None and file_digest(zip_path, "md5") != md5:
        zip_path.unlink()
        raise ChecksumError(f"{zip_path}: md5 does not match the known {md5}; the file was removed, run again to download it")
    unzip_dataset(zip_path, target)
    if not keep_zip:
        zip_path.unlink()
    return target
