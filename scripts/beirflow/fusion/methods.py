"""The fusion methods the config offers, and the parameters each takes: read by the plan (which refuses
parameters that cannot mean anything, naming the key) and by the fusion itself. Standard library only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Config name -> ranx method. Supervised methods (probfuse, bayesfuse, ...) need training on qrels
# and are left out: a fused run must not see the judgements it is evaluated on.
METHODS = {
    "rrf": "rrf",
    "combsum": "sum",
    "combmnz": "mnz",
    "combmax": "max",
    "combmin": "min",
    "combmed": "med",
    "combanz": "anz",
    "combgmnz": "gmnz",
    "wsum": "wsum",
    "wmnz": "wmnz",
    "isr": "isr",
    "log_isr": "log_isr",
    "logn_isr": "logn_isr",
    "bordafuse": "bordafuse",
    "condorcet": "condorcet",
    "rbc": "rbc",
}
NORMS = ("min-max", "max", "sum", "zmuv", "rank", "borda")

# Methods and normalisations that read a run's ranks, not its scores: they are given each run's ranks as
# written (score descending, then docid ascending: trec.run_order), never a rank ranx derives from scores
# with its own order of ties.
RANK_METHODS = frozenset({"rrf", "isr", "log_isr", "logn_isr", "bordafuse", "condorcet", "rbc"})
RANK_NORMS = frozenset({"rank", "borda"})


@dataclass(frozen=True)
class Parameter:
    """One parameter a method takes: its kind, whether it must be given, and the values it may take."""

    kind: str  # 'positive', 'fraction' (strictly between 0 and 1), 'weights' (a number per run)
    required: bool = False


PARAMETERS: dict[str, dict[str, Parameter]] = {
    "rrf": {"k": Parameter("positive")},
    "logn_isr": {"sigma": Parameter("positive")},
    "rbc": {"phi": Parameter("fraction", required=True)},
    "combgmnz": {"gamma": Parameter("positive", required=True)},
    "wsum": {"weights": Parameter("weights", required=True)},
    "wmnz": {"weights": Parameter("weights", required=True)},
}


def parameter_problem(method: str, params: dict[str, Any], runs: int) -> str | None:
    """What is wrong with a method's ``params`` (names, types, ranges, a weight per run), or None."""
    known = PARAMETERS.get(method, {})
    for name in params:
        if name not in known:
            takes = ", ".join(known) or "no parameter"
            return f"params.{name}: {method} takes {takes}"
    for name, parameter in known.items():
        if name not in params:
            if parameter.required:
                return f"params.{name}: {method} needs it"
            continue
        value = params[name]
        if parameter.kind == "weights":
            if not isinstance(value, list) or not all(_is_number(weight) for weight in value):
                return f"params.{name}: a list of numbers, one per run"
            if len(value) != runs:
                return f"params.{name}: {len(value)} weights for {runs} runs"
        elif not _is_number(value):
            return f"params.{name}: '{value}' is not a number"
        elif parameter.kind == "positive" and not value > 0:
            return f"params.{name}: {value} must be greater than 0"
        elif parameter.kind == "fraction" and not 0 < value < 1:
            return f"params.{name}: {value} must be between 0 and 1"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
