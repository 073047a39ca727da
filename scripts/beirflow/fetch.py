"""Models as a stage of the DAG: each distinct (model, revision) fetched once, on the submit host,
into a model cache the cluster shares, and described by a record that every GPU job of it reads.

A GPU job never talks to a hub: it runs with ``HF_HUB_OFFLINE=1`` and loads the folder its record
names (:func:`beirflow.models.resolve_model` with records). The record is the model's identity for
provenance: the name, the revision asked for and the commit it resolved to, and every file with its
size and sha256 (for a hub file stored in LFS, checked against the hub's own sha256).

``package:`` models and local folders get the same record, with no fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from beirflow.atomic import atomic_write
from beirflow.digest import file_digest
from beirflow.models import PACKAGE_PREFIX, RECORDED, ModelError, ResolvedModel, is_hub_name, resolve_model

log = logging.getLogger(__name__)

RECORDS = "results/models"  # the records, one per (model, revision), relative to the workdir


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    sha256: str
    hub_sha256: str | None = None  # the hub's LFS sha256, where the hub stores the file in LFS


@dataclass
class ModelRecord:
    name: str
    revision: str | None  # as the config asks
    commit: str | None  # the hub commit it resolved to; 'package <module> <version>' for a package
    source: str  # 'hub', 'package' or 'folder'
    folder: str
    files: list[FileRecord] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def resolved(self) -> ResolvedModel:
        return ResolvedModel(self.name, Path(self.folder), self.commit)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes": self.total_bytes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRecord:
        files = [FileRecord(**entry) for entry in data.get("files", [])]
        return cls(data["name"], data.get("revision"), data.get("commit"), data["source"], data["folder"], files)


def record_name(model: str, revision: str | None) -> str:
    """The record's file name: a readable tail of the model's name and a hash of (name, revision)."""
    digest = hashlib.sha256(json.dumps([model, revision]).encode("utf-8")).hexdigest()[:12]
    tail = model.rstrip("/").replace(PACKAGE_PREFIX, "").rsplit("/", 1)[-1]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", tail).strip("-.") or "model"
    return f"{readable[:60]}-{digest}"


def record_path(model: str, revision: str | None) -> str:
    return f"{RECORDS}/{record_name(model, revision)}.json"


def read_record(path: Path) -> ModelRecord:
    try:
        return ModelRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"{path}: not a model record ({type(error).__name__}: {error}); rebuild it with: snakemake --forcerun {path}") from None


def cited_models(paths: Iterable[Path]) -> dict[str, Any]:
    """What a provenance file cites of its models: each fetch record, whole."""
    return {"models": [read_record(path).to_dict() for path in paths]}


def use_records(paths: Iterable[Path]) -> None:
    """Load models from the folders these records name (a GPU job's models), never from a hub."""
    for path in paths:
        record = read_record(path)
        RECORDED[(record.name, record.revision)] = record.resolved()


def write_record(record: ModelRecord, path: Path) -> None:
    with atomic_write(path) as handle:
        json.dump(record.to_dict(), handle, indent=1)
        handle.write("\n")


def describe_files(folder: Path, hub_sha256: dict[str, str] | None = None) -> list[FileRecord]:
    """Every file under ``folder`` (links followed, as a snapshot's are) with its size and sha256."""
    records = []
    for path in sorted(folder.rglob("*")):
        if path.is_dir() or path.name.startswith(".") or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(folder).as_posix()
        records.append(FileRecord(relative, path.stat().st_size, file_digest(path), (hub_sha256 or {}).get(relative)))
    return records


def _hub_lfs_sha256(name: str, commit: str) -> dict[str, str]:
    """The hub's sha256 of each of the repository's LFS files at ``commit``."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    return {entry.path: entry.lfs.sha256 for entry in HfApi().list_repo_tree(name, revision=commit, recursive=True) if isinstance(entry, RepoFile) and entry.lfs is not None}


def fetch_model(name: str, revision: str | None, key: str, marker: str = "config.json") -> ModelRecord:
    """Fetch (hub) or find (package, folder) one model and describe it; ModelError names ``key``, the model and the revision."""
    if not is_hub_name(name):
        resolved = resolve_model(name, revision, key, marker)
        source = "package" if name.startswith(PACKAGE_PREFIX) else "folder"
        return ModelRecord(name, revision, resolved.revision, source, str(resolved.folder), describe_files(resolved.folder))
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id=name, revision=revision))
        commit = folder.name  # snapshots/<commit>
        hub_sha256 = _hub_lfs_sha256(name, commit)
    except Exception as error:  # RepositoryNotFound, RevisionNotFound, GatedRepo (401), network: all "cannot be fetched"
        raise ModelError(f"config key {key}: model '{name}' at revision {revision} cannot be fetched: {type(error).__name__}: {_first_line(error)}") from None
    if not (folder / marker).is_file():
        raise ModelError(f"config key {key}: model '{name}' at revision {revision} has no {marker}")
    files = describe_files(folder, hub_sha256)
    corrupt = [entry.path for entry in files if entry.hub_sha256 is not None and entry.hub_sha256 != entry.sha256]
    if corrupt:
        raise ModelError(f"config key {key}: model '{name}' at {commit}: {', '.join(corrupt)} differ from the hub's sha256; delete them from the cache ({folder}) and fetch again")
    return ModelRecord(name, revision, commit, "hub", str(folder), files)


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else ""


def hub_sizes(models: Iterable[tuple[str, str | None]]) -> dict[tuple[str, str | None], int | None]:
    """Bytes each hub model's snapshot holds, from the hub's file list; None where it cannot be asked."""
    sizes: dict[tuple[str, str | None], int | None] = {}
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return {model: None for model in models}
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi()
    for name, revision in models:
        try:
            sizes[(name, revision)] = sum(entry.size for entry in api.list_repo_tree(name, revision=revision, recursive=True) if isinstance(entry, RepoFile))
        except Exception:  # unreachable, unknown, gated: not known, never guessed
            sizes[(name, revision)] = None
    return sizes
