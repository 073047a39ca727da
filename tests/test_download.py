"""BEIR zips: download from a local HTTP server, md5 check, unzip into place, nothing half-done left."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from beirflow.data.download import fetch_beir_archive
from beirflow.workflow.errors import ChecksumError, DataError


@pytest.fixture
def served(tmp_path: Path, tiny_beir: Path) -> Iterator[tuple[str, str, Path]]:
    """A BEIR-style zip (one top folder 'tiny') served on 127.0.0.1; yields (url, md5, served folder)."""
    root = tmp_path / "www"
    root.mkdir()
    archive = root / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(tiny_beir.rglob("*")):
            zipped.write(path, Path("tiny") / path.relative_to(tiny_beir))
    (root / "broken.zip").write_bytes(b"this is not a zip")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hashlib.md5(archive.read_bytes()).hexdigest(), tiny_beir
    finally:
        server.shutdown()
        server.server_close()


def test_download_checks_md5_and_unzips(served, tmp_path: Path) -> None:
    base, md5, source = served
    cache = tmp_path / "cache"
    target = fetch_beir_archive(f"{base}/tiny.zip", md5, cache / "tiny")
    assert (target / "corpus.jsonl").read_bytes() == (source / "corpus.jsonl").read_bytes()
    assert (target / "qrels" / "test.tsv").is_file()
    assert sorted(p.name for p in cache.iterdir()) == [".tiny.lock", "tiny"]  # the zip and scratch folders are gone


def test_checksum_mismatch_removes_the_download(served, tmp_path: Path) -> None:
    base, _, _ = served
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match=r"does not match the known 0+"):
        fetch_beir_archive(f"{base}/tiny.zip", "0" * 32, cache / "tiny")
    assert [p.name for p in cache.iterdir()] == [".tiny.lock"]


def test_bad_zip_leaves_nothing_half_unzipped(served, tmp_path: Path) -> None:
    base, _, _ = served
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="not a zip file"):
        fetch_beir_archive(f"{base}/broken.zip", None, cache / "broken")
    assert not (cache / "broken").exists()
    assert sorted(p.name for p in cache.iterdir()) == [
        ".broken.lock",
        "broken.zip",
    ]  # kept for inspection; its md5 was not checked


def test_two_workflows_sharing_the_cache_download_once_and_keep_the_folder(served, tmp_path: Path) -> None:
    """Two processes fetch the same archive at once: one downloads, the other waits and finds it in place."""
    import subprocess
    import sys

    base, md5, _ = served
    cache = tmp_path / "shared-cache"
    script = Path(__file__).resolve().parents[1] / "scripts" / "download_beir.py"
    commands = [
        [
            sys.executable,
            str(script),
            "--url",
            f"{base}/tiny.zip",
            "--md5",
            md5,
            "--target",
            str(cache / "tiny"),
            "--ready",
            str(tmp_path / f"ready-{index}"),
        ]
        for index in range(2)
    ]
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for command in commands]
    logs = [process.communicate()[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], logs
    assert sum("downloading" in log for log in logs) == 1
    assert sum("already in place" in log for log in logs) == 1
    assert sorted(path.name for path in cache.iterdir()) == [".tiny.lock", "tiny"]
    assert (cache / "tiny" / "corpus.jsonl").is_file()
    assert all((tmp_path / f"ready-{index}").is_file() for index in range(2))
