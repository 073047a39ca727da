"""Models as a stage of the DAG: each distinct (model, revision) fetched once, on the submit host,
into a model cache the cluster shares, and described by a record that every GPU job of it reads.

A GPU job never talks to a hub: it runs with ``HF_HUB_OFFLINE=1`` and loads the folder its record
names (:func:`beirflow.models.loading.resolve_model` with records). The record is the model's identity for
provenance: the name, the revision asked for and the commit it resolved to, and every file with its
size and sha256 (for a hub file stored in LFS, checked against the hub's own sha256).

``package:`` models and local folders get the same record, with no fetch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from beirflow.models.loading import PACKAGE_PREFIX, RECORDED, ModelError, ResolvedModel, is_hub_name, resolve_model
from beirflow.workflow.digest import sha256_and_content_digest
from beirflow.workflow.integrity import verify_file_once
from beirflow.workflow.records import FileRecord, ModelRecord, files_to_fetch, read_record

log = logging.getLogger(__name__)


def use_records(paths: Iterable[Path]) -> None:
    """Load models from the folders these records name (a GPU job's models), never from a hub, once every
    file the record lists is there as fetched: its size by every job, its sha256 once per node and file
    version (:func:`beirflow.workflow.integrity.verify_file_once`)."""
    for path in paths:
        record = read_record(path)
        check_model_files(record, path)
        RECORDED[(record.name, record.revision)] = ResolvedModel(record.name, Path(record.folder), record.commit)


def check_model_files(record: ModelRecord, record_file: Path) -> None:
    restore = f"the model's files changed since its fetch; fetch it again: snakemake --forcerun {record_file}"
    for entry in record.files:
        digest = ("xxh3_128", entry.xxh3_128) if entry.xxh3_128 else ("sha256", entry.sha256)
        verify_file_once(Path(record.folder) / entry.path, entry.size, digest, f"model '{record.name}'", restore)


def describe_files(folder: Path, hub_sha256: dict[str, str] | None = None, only: Iterable[str] | None = None) -> list[FileRecord]:
    """Every file under ``folder`` (links followed, as a snapshot's are), or the ``only`` ones, with its size
    and sha256."""
    wanted = None if only is None else set(only)
    records = []
    for path in sorted(folder.rglob("*")):
        if path.is_dir() or path.name.startswith(".") or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(folder).as_posix()
        if wanted is not None and relative not in wanted:
            continue
        sha256, content = sha256_and_content_digest(path)
        records.append(FileRecord(relative, path.stat().st_size, sha256, (hub_sha256 or {}).get(relative), content))
    return records


def hub_files(name: str, revision: str | None) -> dict[str, tuple[int, str | None]]:
    """The repository's files at ``revision``: path -> (size, the hub's LFS sha256 where it has one)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    return {
        entry.path: (entry.size, entry.lfs.sha256 if entry.lfs is not None else None)
        for entry in HfApi().list_repo_tree(name, revision=revision, recursive=True)
        if isinstance(entry, RepoFile)
    }


def download_loaded_files(name: str, revision: str | None) -> tuple[Path, list[str] | None, dict[str, str]]:
    """Fetch what loading reads (:func:`beirflow.workflow.records.files_to_fetch`) into the model cache: the snapshot's
    folder, the files fetched and the hub's LFS sha256s. With the hub switched off (a cache filled by hand)
    the snapshot is taken as it is: (folder, None, {})."""
    from huggingface_hub import constants, snapshot_download

    if constants.HF_HUB_OFFLINE:
        return Path(snapshot_download(repo_id=name, revision=revision)), None, {}
    listed = hub_files(name, revision)
    wanted = files_to_fetch(listed)
    folder = Path(snapshot_download(repo_id=name, revision=revision, allow_patterns=wanted))
    return folder, wanted, {path: sha256 for path, (_, sha256) in listed.items() if sha256 and path in wanted}


def fetch_model(name: str, revision: str | None, key: str, marker: str = "config.json") -> ModelRecord:
    """Fetch (hub) or find (package, folder) one model and describe it; ModelError names ``key``, the model and the revision."""
    if not is_hub_name(name):
        resolved = resolve_model(name, revision, key, marker)
        source = "package" if name.startswith(PACKAGE_PREFIX) else "folder"
        return ModelRecord(name, revision, resolved.revision, source, str(resolved.folder), describe_files(resolved.folder))
    try:
        folder, wanted, hub_sha256 = download_loaded_files(name, revision)
        commit = folder.name  # snapshots/<commit>
    except Exception as error:  # RepositoryNotFound, RevisionNotFound, GatedRepo (401), network: all "cannot be fetched"
        raise ModelError(
            f"config key {key}: model '{name}' at revision {revision} cannot be fetched: {type(error).__name__}: {_first_line(error)}"
        ) from None
    if not (folder / marker).is_file():
        raise ModelError(f"config key {key}: model '{name}' at revision {revision} has no {marker}")
    files = describe_files(folder, hub_sha256, wanted)
    corrupt = [entry.path for entry in files if entry.hub_sha256 is not None and entry.hub_sha256 != entry.sha256]
    if corrupt:
        raise ModelError(
            f"config key {key}: model '{name}' at {commit}: {', '.join(corrupt)} differ from the hub's sha256; delete them from the cache ({folder}) and fetch again"
        )
    return ModelRecord(name, revision, commit, "hub", str(folder), files)


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else ""


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the hub's host answers at all (huggingface_hub itself retries for about 25 s before giving up)."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlsplit(constants.ENDPOINT)
    try:
        with socket.create_connection(
            (endpoint.hostname or "", endpoint.port or (443 if endpoint.scheme == "https" else 80)), timeout=timeout_s
        ):
            return True
    except OSError:
        return False


def hub_sizes(models: Iterable[tuple[str, str | None]]) -> dict[tuple[str, str | None], int | None]:
    """Bytes each hub model's fetch downloads (the files loading reads, :func:`beirflow.workflow.records.files_to_fetch`),
    from the hub's file list; None where it cannot be asked."""
    sizes: dict[tuple[str, str | None], int | None] = {}
    models = list(models)
    if not models or not hub_reachable():
        return dict.fromkeys(models)
    for name, revision in models:
        try:
            listed = hub_files(name, revision)
            sizes[(name, revision)] = sum(listed[path][0] for path in files_to_fetch(listed))
        except Exception:  # unreachable, unknown, gated: not known, never guessed
            sizes[(name, revision)] = None
    return sizes
