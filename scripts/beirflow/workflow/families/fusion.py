"""Fusion of the runs of other systems (reciprocal rank fusion and ranx's score-based methods)."""

from __future__ import annotations

from collections.abc import Mapping

from beirflow.fusion.methods import parameter_problem
from beirflow.workflow.errors import ConfigError
from beirflow.workflow.family import Entries, Family, FamilyReport, FamilyRule


def check_fusion(fusion: Entries, systems: Mapping[str, str]) -> None:
    """The method's parameters fit the fused runs. (That the runs exist the plan checks for every family.)"""
    for name, entry in fusion.items():
        problem = parameter_problem(entry.get("method", "rrf"), dict(entry.get("params") or {}), len(entry["runs"]))
        if problem:
            raise ConfigError(f"fusion.{name}.{problem}")


FAMILY = Family(
    name="fusion",
    position=90,
    run_rule="fuse",
    rules=(FamilyRule("fuse", local=True),),
    report=FamilyReport(noun="fusion", role="fusion"),
    reads=("runs",),
    check=check_fusion,
)
