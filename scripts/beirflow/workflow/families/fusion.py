"""Fusion of the runs of other systems (reciprocal rank fusion and ranx's score-based methods)."""

from __future__ import annotations

from collections.abc import Mapping

from beirflow.fusion.methods import parameter_problem
from beirflow.workflow.errors import ConfigError
from beirflow.workflow.family import Entries, Family, FamilyReport, FamilyRule


def check_fusion(fusion: Entries, systems: Mapping[str, str]) -> None:
    """The fused runs exist, and the method's parameters fit them."""
    for name, entry in fusion.items():
        key = f"fusion.{name}"
        runs = entry["runs"]
        for run in runs:
            if run not in systems:
                raise ConfigError(f"{key}.runs: '{run}' is not a configured system (known: {', '.join(sorted(systems))})")
        problem = parameter_problem(entry.get("method", "rrf"), dict(entry.get("params") or {}), len(runs))
        if problem:
            raise ConfigError(f"{key}.{problem}")


FAMILY = Family(
    name="fusion",
    position=90,
    run_rule="fuse",
    rules=(FamilyRule("fuse", local=True),),
    report=FamilyReport(noun="fusion", role="fusion"),
    reads=("runs",),
    check=check_fusion,
)
