"""scripts/pin_revisions.py rewrites branch revisions to commits in place, comments and layout kept."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from pin_revisions import pin, unpinned  # noqa: E402

CONFIG = """rerank:
  ce:
    model: cross-encoder/ms-marco-MiniLM-L-6-v2
    revision: main   # to pin
    first_stage: bm25
  llama:
    model: meta-llama/Llama-2-7b-hf
    revision: 01c7f73d771dfac7d292323805ebc428287df4f9
    adapter: castorini/rankllama-v1-7b-lora-passage
    adapter_revision: v1
"""


def test_branches_become_commits_and_nothing_else_changes() -> None:
    assert [(index, model, revision) for index, model, revision in unpinned(CONFIG)] == [(3, "cross-encoder/ms-marco-MiniLM-L-6-v2", "main"), (9, "castorini/rankllama-v1-7b-lora-passage", "v1")]
    commits = {("cross-encoder/ms-marco-MiniLM-L-6-v2", "main"): "a" * 40, ("castorini/rankllama-v1-7b-lora-passage", "v1"): "b" * 40}
    pinned, changes = pin(CONFIG, lambda model, revision: commits[(model, revision)])
    assert pinned == CONFIG.replace("revision: main   # to pin", f"revision: {'a' * 40}   # to pin").replace("adapter_revision: v1", f"adapter_revision: {'b' * 40}")
    assert len(changes) == 2 and unpinned(pinned) == []
    with pytest.raises(ValueError, match="not a commit"):
        pin(CONFIG, lambda model, revision: "main")


def test_check_lists_the_paper_grids_unpinned_models() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "pin_revisions.py"), str(REPO / "config" / "paper.yaml"), "--check"], capture_output=True, text=True)
    listed = {line.split(": ", 1)[1].split(" at ")[0] for line in result.stdout.splitlines()}
    assert result.returncode == 1
    assert "Luyu/co-condenser-marco-retriever" in listed and "castorini/monot5-3b-msmarco-10k" not in listed
