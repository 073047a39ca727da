"""The paper's findings as sentences built from the numbers, or what is missing to build them: size
against gain in-domain and zero-shot, rerankers against dense models of similar size, and where the
largest reranker is best."""

from __future__ import annotations

import math
from collections.abc import Sequence

from beirflow.evaluate.metrics import display_name
from beirflow.report.results import ReportSettings, Results, Row, SystemInfo, common_average, row_value


def _size(parameters: float | None) -> str:
    if parameters is None:
        return "size unknown"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if parameters >= scale:
            return f"{parameters / scale:.3g}{unit}"
    return f"{parameters:.0f}"


def _change(before: float, after: float) -> str:
    relative = f", {100 * (after - before) / before:+.1f}%" if before else ""
    return f"{after - before:+.3f} ({before:.3f} → {after:.3f}{relative})"


def _series(systems: Sequence[SystemInfo]) -> dict[str, list[SystemInfo]]:
    grouped: dict[str, list[SystemInfo]] = {}
    for system in systems:
        if system.series and system.parameters:
            grouped.setdefault(system.series, []).append(system)
    return {name: sorted(members, key=lambda s: s.parameters or 0) for name, members in grouped.items()}


def finding_size(results: Results, systems: Sequence[SystemInfo], beir: Sequence[Row], settings: ReportSettings) -> list[str]:
    """Per series: the gain from its smallest to its largest model, in-domain and zero-shot."""
    metric, in_metric = display_name(settings.primary), display_name(settings.in_domain_metric)
    sentences = []
    for series, members in _series(systems).items():
        ran = [system for system in members if results.ran(system.name)]
        if len(ran) < 2:
            continue
        small, large = ran[0], ran[-1]
        averages = common_average(results, beir, [small.name, large.name], settings.primary)
        small_out, large_out = averages[small.name].value, averages[large.name].value
        small_in = results.means.get((settings.in_domain, small.name, settings.in_domain_metric))
        large_in = results.means.get((settings.in_domain, large.name, settings.in_domain_metric))
        parts = [f"{series}, from {small.label} ({_size(small.parameters)}) to {large.label} ({_size(large.parameters)}):"]
        if small_in is not None and large_in is not None:
            parts.append(f"in-domain {in_metric} on {settings.in_domain} {_change(small_in, large_in)};")
        else:
            parts.append(f"in-domain: no {settings.in_domain} run of both;")
        if small_out is not None and large_out is not None:
            parts.append(
                f"zero-shot BEIR average {metric} over {len(averages[small.name].rows)} dataset(s) {_change(small_out, large_out)}."
            )
        else:
            parts.append("zero-shot: no BEIR dataset run by both.")
        if small_in and large_in is not None and small_out and large_out is not None:
            gain_in, gain_out = (large_in - small_in) / small_in, (large_out - small_out) / small_out
            parts.append(
                f"Relative gain zero-shot {100 * gain_out:+.1f}% against {100 * gain_in:+.1f}% in-domain: {'larger zero-shot, as the paper found' if gain_out > gain_in else 'not larger zero-shot, unlike the paper'}."
            )
        sentences.append(" ".join(parts))
    if not sentences:
        sentences.append("Size against gain: needs two sizes of one series (report.series and a parameter count) with results; "
                         f"have {', '.join(f'{name}: {len(m)}' for name, m in _series(systems).items()) or 'no series'}. config/paper.yaml runs monoT5 60M-3B, GTR 110M-4.8B and SGPT 125M-5.8B.")  # fmt: skip
    return sentences


def finding_rerankers_against_dense(
    results: Results, systems: Sequence[SystemInfo], beir: Sequence[Row], settings: ReportSettings
) -> list[str]:
    """Each reranker against the dense model nearest its size (at most 3x apart)."""
    metric = display_name(settings.primary)
    rerankers = [s for s in systems if s.role == "reranker" and s.parameters]
    dense = [s for s in systems if s.role == "dense retriever" and s.parameters]
    sentences, ahead, pairs = [], 0, 0
    for reranker in rerankers:
        near = [d for d in dense if abs(math.log10(d.parameters / reranker.parameters)) <= math.log10(3)]  # type: ignore[operator]
        if not near:
            continue
        rival = min(near, key=lambda d: abs(math.log10(d.parameters / reranker.parameters)))  # type: ignore[operator]
        averages = common_average(results, beir, [reranker.name, rival.name], settings.primary)
        ours, theirs = averages[reranker.name].value, averages[rival.name].value
        if ours is None or theirs is None:
            continue
        pairs += 1
        ahead += ours > theirs
        sentences.append(
            f"{reranker.label} (reranker, {_size(reranker.parameters)}) {ours:.3f} against {rival.label} (dense, {_size(rival.parameters)}) {theirs:.3f}: {ours - theirs:+.3f} in BEIR average {metric} over {len(averages[reranker.name].rows)} dataset(s)."
        )
    if pairs:
        sentences.append(f"Rerankers ahead of the dense model of similar size in {ahead} of {pairs} pairing(s).")
    else:
        sentences.append("Rerankers against dense models of similar size: needs a reranker and a dense model within 3x of its parameter count, both run on a BEIR dataset; "
                         f"have {len(rerankers)} reranker(s) and {len(dense)} dense model(s) with a parameter count.")  # fmt: skip
    return sentences


def finding_largest_reranker(
    results: Results, systems: Sequence[SystemInfo], beir: Sequence[Row], settings: ReportSettings
) -> list[str]:
    """On how many BEIR datasets the largest reranker is best of all systems run there."""
    rerankers = [
        s
        for s in systems
        if s.role == "reranker"
        and s.parameters
        and any(row_value(results, row, s.name, settings.primary) is not None for row in beir)
    ]
    if not rerankers:
        return ["Largest reranker: no reranker with a parameter count has run on a BEIR dataset."]
    largest = max(rerankers, key=lambda s: s.parameters or 0)
    wins, ran, others = [], [], [s for s in systems if s.name != largest.name]
    for row in beir:
        value = row_value(results, row, largest.name, settings.primary)
        if value is None:
            continue
        ran.append(row.name)
        rivals = [v for v in (row_value(results, row, other.name, settings.primary) for other in others) if v is not None]
        if all(round(value, 4) >= round(rival, 4) for rival in rivals):
            wins.append(row.name)
    if len(systems) < 2:
        return [f"Largest reranker: {largest.label} is the only system; nothing to be best against."]
    return [
        f"{largest.label}, the largest reranker ({_size(largest.parameters)}), is best of {len(systems)} systems on {len(wins)} of {len(ran)} BEIR dataset(s) run ({', '.join(wins) or 'none'}); the paper: monoT5-3B on 12 of 18."
    ]
