"""The conda environments load what their jobs import.

conda cannot be installed here, so this is the check that can run: for every rule, the stage
programs its shell runs, the modules they import (transitively through beirflow, function-level
imports included), the distributions those modules come from, and whether the rule's env file
declares each one. A distribution that arrives only as someone else's dependency today is missing:
it is what broke monoT5 tokenizers that ship only spiece.model (sentencepiece, protobuf).
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SCRIPTS = REPO / "scripts"
RULES = REPO / "workflow" / "rules"

# Imported by a module only inside a guard for an optional feature, or by transformers/tokenizers
# themselves at run time for a file format rather than by beirflow: declared all the same where
# the feature runs, so listed here with the reason and checked like the others.
RUNTIME_IMPORTS = {
    # transformers 5 converts a tokenizer shipped only as spiece.model with these (castorini's monoT5).
    "gpu.yaml": {"sentencepiece", "protobuf"},
}
# A module name that several distributions provide: any of them satisfies it.
ALTERNATIVES = {"faiss": {"faiss-cpu", "faiss-gpu"}}


def rule_blocks() -> dict[str, tuple[str, list[str]]]:
    """rule name -> (its env file's name, the stage programs its shell runs)."""
    rules: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(RULES.glob("*.smk")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", text, flags=re.MULTILINE):
            name, body = match.groups()
            env = re.search(r'conda:\s*\n\s+"\.\./\.\./envs/([\w.-]+)"', body)
            scripts = re.findall(r"\$BEIRFLOW_SCRIPTS/(\w+)\.py", body)
            if scripts:
                assert env, f"{path.name}: rule {name} runs {scripts} but names no conda env"
                rules[name] = (env.group(1), scripts)
    return rules


def _names(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return set()


def _imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(what the module imports when it is imported, what it imports anywhere, functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    at_import = set().union(*(_names(node) for node in tree.body)) if tree.body else set()
    anywhere = set().union(*(_names(node) for node in ast.walk(tree)))
    return at_import, anywhere


@cache
def third_party_modules(script: str) -> frozenset[str]:
    """Top-level third-party modules a stage program may import: every import (function-level ones
    included) of every beirflow module that importing the program imports."""
    seen: set[Path] = set()
    found: set[str] = set()
    queue = [SCRIPTS / f"{script}.py"]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        at_import, anywhere = _imports_of(path)
        for name in anywhere:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in ("__future__", "beirflow"):
                found.add(top)
        for name in at_import | ({name for name in anywhere if path.parent == SCRIPTS}):
            if name.split(".")[0] == "beirflow":
                module = SCRIPTS / Path(*name.split("."))
                queue += [candidate for candidate in (module.with_suffix(".py"), module / "__init__.py") if candidate.is_file()]
    return frozenset(found)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(env_file: Path) -> set[str]:
    """Distribution names an env file declares (conda packages and pip requirements)."""
    environment = yaml.safe_load(env_file.read_text(encoding="utf-8"))
    names: set[str] = set()
    for entry in environment.get("dependencies", []):
        for requirement in entry.get("pip", []) if isinstance(entry, dict) else [entry]:
            names.add(_normalise(re.split(r"[\s=<>!~\[;]", str(requirement).strip(), maxsplit=1)[0]))
    return names


@cache
def _providers() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    if module in ALTERNATIVES:
        return ALTERNATIVES[module]
    providers = _providers().get(module)
    assert providers, f"no installed distribution provides the module '{module}'"
    return {_normalise(provider) for provider in providers}


def missing_from_envs(envs: Path) -> list[str]:
    problems = []
    for rule, (env_name, scripts) in rule_blocks().items():
        have = declared(envs / env_name)
        for script in scripts:
            for module in sorted(third_party_modules(script)):
                if not distributions_of(module) & have:
                    problems.append(
                        f"rule {rule} ({script}.py) imports '{module}', which envs/{env_name} does not declare (any of: {', '.join(sorted(distributions_of(module)))})"
                    )
    for env_name, modules in RUNTIME_IMPORTS.items():
        problems += [
            f"envs/{env_name} does not declare {name}, which its jobs load at run time"
            for name in sorted(modules - declared(envs / env_name))
        ]
    return problems


def test_every_rule_runs_a_script_under_a_conda_env() -> None:
    rules = rule_blocks()
    assert {
        "prepare_dataset",
        "bm25_index",
        "rerank_shard",
        "encode_documents",
        "dense_search",
        "fetch_model",
        "evaluate",
        "report",
    } <= rules.keys()


def test_every_env_declares_what_its_jobs_import() -> None:
    assert missing_from_envs(REPO / "envs") == []


@pytest.mark.parametrize(
    ("env_name", "package"),
    [("gpu.yaml", "sentencepiece"), ("gpu.yaml", "transformers"), ("eval.yaml", "ranx"), ("bm25.yaml", "pyserini")],
)
def test_the_check_fails_when_a_package_is_removed(tmp_path: Path, env_name: str, package: str) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    for env_file in (REPO / "envs").glob("*.yaml"):
        text = env_file.read_text(encoding="utf-8")
        if env_file.name == env_name:
            text = re.sub(rf"^\s*- {re.escape(package)}[=<>].*\n", "", text, flags=re.MULTILINE)
        (envs / env_file.name).write_text(text, encoding="utf-8")
    problems = missing_from_envs(envs)
    assert problems and all(env_name in problem for problem in problems), problems


def test_the_package_declares_what_every_stage_imports() -> None:
    """pyproject.toml too: a distribution that arrives only as another's dependency is declared."""
    project = (
        (REPO / "pyproject.toml").read_text(encoding="utf-8").split("\ntest = [", 1)[0]
    )  # dependencies and the cpu/gpu extras
    requirements = {_normalise(name) for name in re.findall(r'"([A-Za-z0-9_.-]+)(?:[=<>~]=|[<>\[])', project)}
    modules = set().union(*(third_party_modules(path.stem) for path in SCRIPTS.glob("*.py")))
    missing = sorted(module for module in modules if not distributions_of(module) & requirements)
    assert missing == [], missing
    assert {"sentencepiece", "protobuf"} <= requirements
