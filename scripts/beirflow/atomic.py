"""Write outputs to a temporary path and rename, so a killed job never leaves a half file.

Snakemake treats an existing output as done; a file or index directory only ever appears
under its final name once it is complete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _temporary_sibling(path: Path) -> Path:
    # Same directory, so the final rename stays on one file system and is atomic.
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _remove_stale_temporaries(final: Path) -> None:
    # Left by a killed job. Snakemake runs one job per output at a time, so none is live.
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        _remove(stale)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to fill; on success it replaces ``path`` (file or directory)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(final)
    temporary = _temporary_sibling(final)
    try:
        yield temporary
        if final.exists():
            _remove(final)
        os.replace(temporary, final)
    finally:
        if temporary.exists() or temporary.is_symlink():
            _remove(temporary)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing; it is fsynced and renamed to ``path`` on success."""
    with atomic_path(path) as temporary:
        with open(temporary, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
