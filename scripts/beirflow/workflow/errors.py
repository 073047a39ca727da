"""Errors that name the file and line at fault."""

from __future__ import annotations

from pathlib import Path


class BeirflowError(Exception):
    """Base class for the errors beirflow raises on bad input."""


class ConfigError(BeirflowError, ValueError):
    """A config that names something that does not exist, or breaks the schema: the message names the key."""


class DataError(BeirflowError, ValueError):
    """Bad input data: the message names the file and, where there is one, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


def rebuild_hint(output: str | Path) -> str:
    """How to remake a workflow output found corrupt: Snakemake takes it as done until forced."""
    return f"rebuild it with: snakemake --forcerun {output}"


class ChecksumError(BeirflowError):
    """A download whose checksum does not match the known one."""
