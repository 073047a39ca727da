"""Pin every Hugging Face model of a config to a commit: replace a branch or tag ('main') under
'revision:' or 'adapter_revision:' by the commit it points to now, in place, comments kept.

    python scripts/pin_revisions.py config/paper.yaml          # needs the hub (network)
    python scripts/pin_revisions.py config/paper.yaml --check  # exit 1 if anything is unpinned, or a
                                                               # pinned commit is not on the hub (where reachable)
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

COMMIT = re.compile(r"^[0-9a-f]{40}$")
# A system entry's model and its revision lines, in the order a config writes them.
_NAME = re.compile(r"^(\s+)(model|adapter):\s*(\S+)\s*$")
_REVISION = re.compile(r"^(\s+)(revision|adapter_revision):\s*(\S+)(\s*(#.*)?)$")


def hub_commit(name: str, revision: str) -> str:
    from huggingface_hub import HfApi

    return str(HfApi().model_info(name, revision=revision).sha)


def revisions(text: str) -> list[tuple[int, str, str]]:
    """(line index, model, revision) of every revision line."""
    found, names = [], {}
    for index, line in enumerate(text.splitlines()):
        if match := _NAME.match(line):
            names[match.group(2)] = match.group(3)
        elif match := _REVISION.match(line):
            owner = names.get("adapter" if match.group(2) == "adapter_revision" else "model")
            if owner:
                found.append((index, owner, match.group(3)))
    return found


def unpinned(text: str) -> list[tuple[int, str, str]]:
    """(line index, model, revision) of every revision that is not a 40-hex commit."""
    return [entry for entry in revisions(text) if not COMMIT.match(entry[2])]


def check(path: Path, text: str) -> int:
    """Print each revision's state; 1 if one is unpinned or a pinned commit is not on the hub."""
    from beirflow.workflow.fetch import hub_reachable

    failed = 0
    reachable = hub_reachable()
    for index, model, revision in revisions(text):
        where = f"{path}:{index + 1}: {model} at '{revision}'"
        if not COMMIT.match(revision):
            print(f"{where}: not a commit")
            failed = 1
        elif not reachable:
            print(f"{where}: a commit; not confirmed (the hub is unreachable)")
        else:
            try:
                hub_commit(model, revision)
                print(f"{where}: confirmed on the hub")
            except Exception as error:  # RepositoryNotFound, RevisionNotFound, gated: not confirmed
                print(f"{where}: not found on the hub ({type(error).__name__})")
                failed = 1
    return failed


def pin(text: str, resolve: Callable[[str, str], str]) -> tuple[str, list[str]]:
    lines = text.splitlines(keepends=True)
    changes = []
    for index, model, revision in unpinned(text):
        commit = resolve(model, revision)
        if not COMMIT.match(commit):
            raise ValueError(f"{model}@{revision} resolved to '{commit}', not a commit")
        match = _REVISION.match(lines[index].rstrip("\n"))
        assert match is not None
        lines[index] = f"{match.group(1)}{match.group(2)}: {commit}{match.group(4) or ''}\n"
        changes.append(f"line {index + 1}: {model} {revision} -> {commit}")
    return "".join(lines), changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument(
        "--check",
        action="store_true",
        help="confirm every revision is a commit the hub has (where it is reachable); exit 1 if not",
    )
    args = parser.parse_args()
    text = args.config.read_text(encoding="utf-8")
    if args.check:
        sys.exit(check(args.config, text))
    pinned, changes = pin(text, hub_commit)
    args.config.write_text(pinned, encoding="utf-8")
    print("\n".join(changes) or "every revision is already a commit")


if __name__ == "__main__":
    main()
