"""Errors that name the file and line at fault."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


class BeirflowError(Exception):
    """Base class for the errors beirflow raises on bad input."""


class DataError(BeirflowError, ValueError):
    """Bad input data: the message names the file and, where there is one, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


class ChecksumError(BeirflowError):
    """A download whose checksum does not match the known one."""


def iter_rows(path: Path, layout: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` of a whitespace-separated file whose rows have ``layout``'s fields.

    ``layout`` names the fields ('qid Q0 docid rank score tag'); a row with another count names its line.
    """
    if not path.is_file():
        raise DataError(path, "file not found")
    width = len(layout.split())
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != width:
                raise DataError(path, f"expected {width} fields '{layout}', got {len(fields)}", number)
            yield number, fields
