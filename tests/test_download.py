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

from beirflow.download import fetch_beir_archive
from beirflow.errors import ChecksumError, DataError


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
    assert sorted(p.name for p in cache.iterdir()) == ["tiny"]  # the zip and scratch folders are gone


def test_checksum_mismatch_removes_the_download(served, tmp_path: Path) -> None:
    base, _, _ = served
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="does not match the known 0+"):
        fetch_beir_archive(f"{base}/tiny.zip", "0" * 32, cache / "tiny")
    assert list(cache.iterdir()) == []


def test_bad_zip_leaves_nothing_half_unzipped(served, tmp_path: Path) -> None:
    base, _, _ = served
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="not a zip file"):
        fetch_beir_archive(f"{base}/broken.zip", None, cache / "broken")
    assert not (cache / "broken").exists()
    assert [p.name for p in cache.iterdir()] == ["broken.zip"]  # kept for inspection; its md5 was not checked
