"""scripts/pin_revisions.py rewrites branch revisions to commits in place, comments and layout kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from pin_revisions import pin, unpinned

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
    assert [(index, model, revision) for index, model, revision in unpinned(CONFIG)] == [
        (3, "cross-encoder/ms-marco-MiniLM-L-6-v2", "main"),
        (9, "castorini/rankllama-v1-7b-lora-passage", "v1"),
    ]
    commits = {
        ("cross-encoder/ms-marco-MiniLM-L-6-v2", "main"): "a" * 40,
        ("castorini/rankllama-v1-7b-lora-passage", "v1"): "b" * 40,
    }
    pinned, changes = pin(CONFIG, lambda model, revision: commits[(model, revision)])
    assert pinned == CONFIG.replace("revision: main   # to pin", f"revision: {'a' * 40}   # to pin").replace(
        "adapter_revision: v1", f"adapter_revision: {'b' * 40}"
    )
    assert len(changes) == 2 and unpinned(pinned) == []
    with pytest.raises(ValueError, match="not a commit"):
        pin(CONFIG, lambda model, revision: "main")


def _check(config: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"} | environment
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "pin_revisions.py"), str(config), "--check"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_check_finds_every_paper_revision_a_commit_and_says_when_the_hub_cannot_confirm_it() -> None:
    result = _check(REPO / "config" / "paper.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 22 and all(line.endswith("a commit; not confirmed (the hub is unreachable)") for line in lines), lines


def test_check_confirms_commits_the_hub_has_and_fails_on_one_it_lacks(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    from local_hub import LocalHub

    with LocalHub() as hub:
        commit = hub.add("org/tiny-ce", tiny_cross_encoder)
        config = tmp_path / "grid.yaml"
        config.write_text(
            f"rerank:\n  a:\n    model: org/tiny-ce\n    revision: {commit}\n  b:\n    model: org/tiny-ce\n    revision: {'0' * 40}\n"
        )
        result = _check(config, HF_ENDPOINT=hub.endpoint)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{config}:4: org/tiny-ce at '{commit}': confirmed on the hub",
        f"{config}:7: org/tiny-ce at '{'0' * 40}': not found on the hub (RevisionNotFoundError)",
    ]
