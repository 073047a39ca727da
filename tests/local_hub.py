"""A local stand-in for the Hugging Face Hub: the part of its API that ``snapshot_download`` uses.

* ``GET /api/models/{org}/{name}/tree/{revision}`` (``?recursive=...``): the repository's files with
  their size, git blob id and, for weights, the LFS sha256;
* ``GET /api/models/{org}/{name}/revision/{revision}``: the commit a revision resolves to;
* ``HEAD`` and ``GET /{org}/{name}/resolve/{revision}/{path}``: the file, with ``X-Repo-Commit``,
  ``ETag`` and, for LFS files, ``X-Linked-Etag`` and ``X-Linked-Size``, as the Hub sends them.

Errors carry the Hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``GatedRepo``), so
``huggingface_hub`` raises the same exceptions as against the real Hub. Every request is counted.
Serves on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".model")


@dataclass
class Repository:
    folder: Path
    commit: str
    gated: bool = False
    branches: dict[str, str] = field(default_factory=dict)

    def files(self) -> list[Path]:
        return sorted(path for path in self.folder.rglob("*") if path.is_file())


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class LocalHub:
    """``with LocalHub() as hub: hub.add('org/model', folder)``; ``hub.endpoint`` is HF_ENDPOINT."""

    def __init__(self) -> None:
        self.repositories: dict[str, Repository] = {}
        self.requests: Counter[tuple[str, str]] = Counter()  # (method, path) -> count
        self.stall_after_bytes: int | None = None  # serve this many bytes of a file, then hang
        self._server: http.server.ThreadingHTTPServer | None = None

    def add(self, repo_id: str, folder: Path, gated: bool = False) -> str:
        """Serve ``folder`` as ``repo_id`` at a commit derived from its content; returns the commit."""
        digest = hashlib.sha1()
        for path in sorted(path for path in folder.rglob("*") if path.is_file()):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
        commit = digest.hexdigest()
        self.repositories[repo_id] = Repository(folder, commit, gated, {"main": commit})
        return commit

    def downloads(self, repo_id: str) -> int:
        """GETs of the repository's files (HEADs and API calls not counted)."""
        return sum(
            count
            for (method, path), count in self.requests.items()
            if method == "GET" and path.startswith(f"/{repo_id}/resolve/")
        )

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> LocalHub:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- requests ---------------------------------------------------------------------------

    def _handle(self, request: http.server.BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(request.path).path)
        self.requests[("HEAD" if head else "GET", path)] += 1
        api = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(tree|revision)/([^/]+)(?:/.*)?", path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if api:
            repo_id, what, revision = api.groups()
            repository, commit = self._lookup(request, repo_id, revision)
            if repository is None or commit is None:
                return
            if what == "revision":
                body = {
                    "id": repo_id,
                    "sha": commit,
                    "siblings": [{"rfilename": p.relative_to(repository.folder).as_posix()} for p in repository.files()],
                }
            else:
                body = [self._tree_entry(repository, p) for p in repository.files()]
            self._send(request, 200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)
        elif resolve:
            repo_id, revision, file_path = resolve.groups()
            repository, commit = self._lookup(request, repo_id, revision)
            if repository is None or commit is None:
                return
            target = repository.folder / file_path
            if not target.is_file():
                self._error(request, 404, "EntryNotFound", f"{file_path} does not exist on {revision}")
                return
            data = target.read_bytes()
            headers = {"X-Repo-Commit": commit, "ETag": f'"{_git_blob_id(data)}"', "Content-Type": "application/octet-stream"}
            if target.name.endswith(LFS_SUFFIXES):
                headers.update({"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data))})
            self._send(request, 200, data, headers, head)
        else:
            self._error(request, 404, "", "not a path of this hub")

    def _lookup(
        self, request: http.server.BaseHTTPRequestHandler, repo_id: str, revision: str
    ) -> tuple[Repository | None, str | None]:
        repository = self.repositories.get(repo_id)
        if repository is None:
            self._error(request, 404, "RepoNotFound", f"Repository Not Found for url: {request.path}.")
            return None, None
        if repository.gated:
            self._error(
                request,
                401,
                "GatedRepo",
                f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it.",
            )
            return None, None
        commit = repository.branches.get(revision, revision if revision == repository.commit else None)
        if commit is None:
            self._error(request, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None, None
        return repository, commit

    def _tree_entry(self, repository: Repository, path: Path) -> dict:
        data = path.read_bytes()
        entry = {
            "type": "file",
            "oid": _git_blob_id(data),
            "size": len(data),
            "path": path.relative_to(repository.folder).as_posix(),
        }
        if path.name.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def _error(self, request: http.server.BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(request, status, json.dumps({"error": message}).encode(), headers, head=request.command == "HEAD")

    def _send(
        self, request: http.server.BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str], head: bool
    ) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if head:
            return
        if (
            self.stall_after_bytes is not None
            and status == 200
            and len(body) > self.stall_after_bytes
            and headers.get("Content-Type") == "application/octet-stream"
        ):
            request.wfile.write(body[: self.stall_after_bytes])
            request.wfile.flush()
            time.sleep(60)  # the client is killed meanwhile
            return
        request.wfile.write(body)
