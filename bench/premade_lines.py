"""A stage program run with its run's lines already made: the bound for the stage's writing.

    python bench/premade_lines.py REFERENCE_RUN LINE_ENDS.npy SCRIPT [ARGUMENTS...]

Runs ``SCRIPT`` (a stage program of scripts/) as its rule would, except that ``LinesWriter.write``, given a batch
of n hits, formats nothing: it writes the next n lines of ``REFERENCE_RUN`` (the same stage's own output from
an earlier run, memory-mapped; ``LINE_ENDS.npy`` holds the byte offset after each of its lines). Everything
else the stage does is its own: reading, searching or fusing, sorting each batch into run order, the output's
check, digest, fsync and rename. So the stage takes what it would if its run were written at the disk's speed,
and bench/scaling.py's ``--premade-lines`` compares the stage with this. The output must be the reference's
bytes (the caller compares them).
"""

from __future__ import annotations

import mmap
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np


def line_ends(run: Path) -> np.ndarray:
    """The byte offset after each line of ``run``."""
    text = np.fromfile(run, dtype=np.uint8)
    return np.flatnonzero(text == ord("\n")).astype(np.int64) + 1


def main() -> None:
    reference, ends_file, script, *arguments = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent))
    from beirflow.runs import columns

    ends = np.load(ends_file, mmap_mode="r")
    with open(reference, "rb") as handle:
        text = memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
    written = {"lines": 0, "bytes": 0}

    def write(self: columns.LinesWriter, hits: Any) -> None:
        lines = written["lines"] + len(hits)
        end = int(ends[lines - 1]) if lines else 0
        self._write(text[written["bytes"] : end])  # as the writer writes a piece, the disk started on it
        written.update(lines=lines, bytes=end)

    columns.LinesWriter.write = write  # type: ignore[method-assign]
    sys.argv = [script, *arguments]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
