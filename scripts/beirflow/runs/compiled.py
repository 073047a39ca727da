"""Run lines formatted by compiled code (``run_lines.c``: Ryu's shortest digits in ``repr``'s layout), built on
first use with the machine's C compiler and kept in :data:`CACHE_VARIABLE`'s folder, one library per source.

Where no compiler is found or the build fails, :func:`library` is None and runs are formatted by Arrow
(:func:`beirflow.runs.columns.arrow_run_lines`), the same bytes at about a third of the speed.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("beirflow")

SOURCE = Path(__file__).with_name("run_lines.c")
RYU = Path(__file__).with_name("ryu")
CACHE_VARIABLE = "BEIRFLOW_COMPILED_DIR"  # the workflow sets it to resources/compiled in the working directory
FLAGS = ["-O2", "-std=c99", "-shared", "-fPIC"]
# A line's bytes beyond its two ids, its rank and its tag: four spaces, "Q0" and a score at its longest (repr).
LINE_OVERHEAD = 4 + 2 + 24


def cache_folder() -> Path:
    setting = os.environ.get(CACHE_VARIABLE)
    if setting:
        return Path(setting)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "beirflow" / "compiled"


def compiler() -> str | None:
    """``$CC`` where set (a command, flags allowed; empty: none), else the first of cc, gcc and clang on the PATH."""
    if "CC" in os.environ:
        return os.environ["CC"] or None
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)


def _sources_digest() -> str:
    digest = hashlib.sha256(" ".join(FLAGS).encode())
    for path in [SOURCE, *sorted(RYU.glob("*.[ch]"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


_BUILDING = threading.Lock()  # the writer's threads ask for the library at once


def library() -> Any | None:
    """The compiled library, built here if this source has none yet in the cache; None where it cannot be."""
    with _BUILDING:
        return _library()


@cache
def _library() -> Any | None:
    cc = compiler()
    if cc is None:
        log.info("run lines: no C compiler (CC or cc, gcc, clang on the PATH); Arrow formats them")
        return None
    folder = cache_folder()
    built = folder / f"run_lines-{_sources_digest()}-{platform.machine()}.so"
    try:
        if not built.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            _build(cc, built)
        return _bound(ctypes.CDLL(str(built)))
    except (OSError, subprocess.SubprocessError) as error:
        output = getattr(error, "stderr", "") or ""
        log.warning("run lines: %s could not build or load %s (%s); Arrow formats them. %s", cc, built, error, output[-2000:])
        return None


def _build(cc: str, built: Path) -> None:
    """Compiles to a temporary name beside ``built`` and renames: jobs that build at once each leave a whole file."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{built.stem}-", suffix=".so", dir=built.parent)
    os.close(descriptor)
    try:
        command = [*shlex.split(cc), *FLAGS, "-I", str(SOURCE.parent), str(SOURCE), "-o", temporary]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        os.replace(temporary, built)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _bound(compiled: Any) -> Any:
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    compiled.beirflow_run_lines.argtypes = [size, *[pointer] * 6, ctypes.c_char_p, size, pointer, size]
    compiled.beirflow_run_lines.restype = size
    compiled.beirflow_repr_doubles.argtypes = [size, pointer, pointer]
    compiled.beirflow_repr_doubles.restype = size
    return compiled


def _address(array: np.ndarray) -> int:
    return int(array.ctypes.data)


def _string_parts(strings: Any) -> tuple[np.ndarray, Any, int]:
    """A large_string array's offsets (from its own first), its data buffer and the bytes its values hold."""
    from beirflow.runs.columns import string_offsets

    offsets = string_offsets(strings)
    return offsets, strings.buffers()[2], int(offsets[-1] - offsets[0])


def compiled_run_lines(compiled: Any, query_ids: Any, doc_ids: Any, ranks: np.ndarray, scores: np.ndarray, tag: str) -> Any:
    """The run's text (``qid Q0 docid rank score tag`` a line) formatted by ``compiled``, as a numpy byte array."""
    import pyarrow as pa

    from beirflow.runs.columns import one_array

    text = pa.large_string()
    query_ids, doc_ids = (one_array(strings).cast(text) for strings in (query_ids, doc_ids))
    lengths = {len(query_ids), len(doc_ids), len(ranks), len(scores)}
    if len(lengths) > 1 or query_ids.null_count or doc_ids.null_count:
        raise ValueError(
            f"run lines: {len(query_ids)} query ids, {len(doc_ids)} document ids, {len(ranks)} ranks and {len(scores)} "
            f"scores, {query_ids.null_count + doc_ids.null_count} ids missing: a line each, every id given"
        )
    ranks = np.ascontiguousarray(ranks, dtype=np.int64)
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    ending = f"{tag}\n".encode()
    query_offsets, query_data, query_bytes = _string_parts(query_ids)
    doc_offsets, doc_data, doc_bytes = _string_parts(doc_ids)
    rank_width = max(len(str(int(ranks.min()))), len(str(int(ranks.max())))) if len(ranks) else 0
    capacity = query_bytes + doc_bytes + len(ranks) * (LINE_OVERHEAD + rank_width + len(ending))
    out = np.empty(capacity, dtype=np.uint8)
    written = compiled.beirflow_run_lines(
        len(ranks),
        _address(query_offsets), query_data.address if query_data is not None else None,
        _address(doc_offsets), doc_data.address if doc_data is not None else None,
        _address(ranks), _address(scores), ending, len(ending), _address(out), capacity,
    )  # fmt: skip
    if written < 0:
        raise RuntimeError("run lines: the buffer was too small for the lines (a bug in its size)")
    return out[:written]


def compiled_reprs(compiled: Any, values: np.ndarray) -> list[str]:
    """``repr`` of each of ``values`` as the compiled code writes it (for the tests)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty(len(values) * 25, dtype=np.uint8)
    written = compiled.beirflow_repr_doubles(len(values), _address(values), _address(out))
    return out[:written].tobytes().decode("ascii").splitlines()
