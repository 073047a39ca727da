"""The report's plots, as PNG bytes (matplotlib, no display needed).

* ``size``: primary metric against parameter count (log scale), one line per series, BEIR average.
* ``size_per_dataset``: the same, one small panel per BEIR dataset.
* ``in_domain_vs_zero_shot``: the in-domain metric (MS MARCO dev MRR@10) and the BEIR average
  side by side, against size, as the paper's figure sets them.
* ``winners``: datasets x systems, coloured by the distance to the row's best, the best outlined.

A plot without the data it needs says so inside its frame instead of being left out.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from beirflow.evaluate.metrics import display_name
from beirflow.report.assemble import Report
from beirflow.report.results import Row, SystemInfo, beir_average, row_value

PLOTS = ("size", "size_per_dataset", "in_domain_vs_zero_shot", "winners")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    # Fixed metadata: the same results give the same bytes.
    figure.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _empty(axis: Any, message: str) -> None:
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=axis.transAxes, fontsize=9, color="#555")
    axis.set_xticks([])
    axis.set_yticks([])


def _sized(report: Report) -> list[SystemInfo]:
    return [system for system in report.systems if system.parameters]


# Twenty colours told apart at a glance: matplotlib's tab10, then the dark half of tab20b/tab20c.
COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363",
)  # fmt: skip


@dataclass(frozen=True)
class SeriesStyle:
    label: str
    colour: str
    marker: str
    line: str


def series_styles(report: Report) -> dict[str, SeriesStyle]:
    """One style per series (a system without one is its own), the same in every plot of the report:
    colours by the series' place in name order, markers and line as the family's record says (circles and
    solid lines for rerankers, squares and dashes for retrievers); past twenty series the colours repeat with
    other markers."""
    firsts: dict[str, SystemInfo] = {}
    for system in _sized(report):
        firsts.setdefault(system.series or system.label, system)
    styles = {}
    for index, (key, system) in enumerate(sorted(firsts.items())):
        markers = system.markers
        styles[key] = SeriesStyle(
            f"{key} ({system.kind})", COLOURS[index % len(COLOURS)], markers[index // len(COLOURS) % len(markers)], system.line
        )
    return styles


def _series_lines(axis: Any, report: Report, value: Callable[[SystemInfo], float | None], ylabel: str) -> bool:
    """One line per series (markers for systems alone), BM25 baseline dotted. False: nothing to draw."""
    drawn = False
    groups: dict[str, list[tuple[float, float]]] = {}
    styles = series_styles(report)
    for system in _sized(report):
        y = value(system)
        if y is None:
            continue
        groups.setdefault(system.series or system.label, []).append((float(system.parameters or 0), y))
    for key, points in sorted(groups.items()):
        points.sort()
        style = styles[key]
        axis.plot(
            [p[0] for p in points], [p[1] for p in points], style.line, marker=style.marker, label=style.label, color=style.colour
        )
        drawn = True
    baseline = next((system for system in report.systems if system.name == report.settings.baseline), None)
    if baseline is not None:
        y = value(baseline)
        if y is not None:
            axis.axhline(y, linestyle=":", color="#333", label=baseline.label)
            drawn = True
    if drawn:
        axis.set_xscale("log")
        axis.set_xlabel("parameters (log scale)")
        axis.set_ylabel(ylabel)
        axis.grid(True, which="major", color="#ddd")
    return drawn


def _average(report: Report, system: SystemInfo) -> float | None:
    return beir_average(report.results, report.beir, system.name, report.settings.primary).value


def size_plot(report: Report) -> bytes:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.2))
    names = ", ".join(row.name for row in report.beir) or "none"
    axis.set_title(
        f"BEIR average {display_name(report.settings.primary)} against size ({len(report.beir)} of 18 BEIR datasets)", fontsize=10
    )
    if _series_lines(
        axis, report, lambda system: _average(report, system), f"BEIR average {display_name(report.settings.primary)}"
    ):
        axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        # Below the axis label, wrapped: with 18 datasets one line would run off the figure.
        note = textwrap.fill(f"Averaged: {names}", 130)
        axis.annotate(note, xy=(0, -0.2), xycoords="axes fraction", va="top", fontsize=7, color="#555")
    else:
        _empty(axis, "No system with a parameter count has results on every BEIR dataset run.")
    return _png(figure)


def size_per_dataset_plot(report: Report) -> bytes:
    plt = _pyplot()
    rows = report.beir or report.rows
    columns = min(4, max(1, len(rows)))
    lines = max(1, math.ceil(len(rows) / columns))
    figure, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 2.6 * lines), squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(rows):
            axis.set_axis_off()
            continue
        row = rows[index]
        axis.set_title(row.name, fontsize=9)

        def value(system: SystemInfo, row: Row = row) -> float | None:
            return row_value(report.results, row, system.name, report.settings.primary)

        if not _series_lines(axis, report, value, display_name(report.settings.primary)):
            _empty(axis, "no sized system here")
    # One legend for every panel, with each series drawn anywhere (a panel may lack some).
    shown: dict[str, Any] = {}
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            shown.setdefault(label, handle)
    figure.tight_layout()
    if shown:
        figure.legend(list(shown.values()), list(shown), loc="upper center", ncol=min(4, len(shown)), fontsize=8,
                      bbox_to_anchor=(0.5, 0.0))  # fmt: skip
    return _png(figure)


def in_domain_plot(report: Report) -> bytes:
    plt = _pyplot()
    settings = report.settings
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    in_label = f"{settings.in_domain} {display_name(settings.in_domain_metric)}"
    left.set_title(f"In-domain: {in_label}", fontsize=10)
    right.set_title(f"Zero-shot: BEIR average {display_name(settings.primary)}", fontsize=10)
    if not _series_lines(
        left,
        report,
        lambda system: report.results.means.get((settings.in_domain, system.name, settings.in_domain_metric)),
        in_label,
    ):
        _empty(left, f"No {settings.in_domain} run of a system with a parameter count.")
    if _series_lines(right, report, lambda system: _average(report, system), f"BEIR average {display_name(settings.primary)}"):
        right.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        _empty(right, "No system with a parameter count has results on every BEIR dataset run.")
    figure.tight_layout()
    return _png(figure)


def winners_plot(report: Report) -> bytes:
    plt = _pyplot()
    rows: Sequence[Row] = report.rows
    systems = report.systems
    figure, axis = plt.subplots(figsize=(2.0 + 0.62 * max(1, len(systems)), 1.4 + 0.3 * max(1, len(rows))))
    if not rows or not systems:
        _empty(axis, "No results.")
        return _png(figure)
    import numpy as np

    values = np.full((len(rows), len(systems)), np.nan)
    for i, row in enumerate(rows):
        for j, system in enumerate(systems):
            value = row_value(report.results, row, system.name, report.settings.primary)
            if value is not None:
                values[i, j] = value
    gap = values - np.nanmax(np.where(np.isnan(values), -np.inf, values), axis=1, keepdims=True)
    image = axis.imshow(
        np.where(np.isnan(gap), np.nan, gap),
        cmap="viridis",
        vmin=min(-0.1, float(np.nanmin(gap)) if np.isfinite(gap).any() else -0.1),
        vmax=0,
        aspect="auto",
    )
    for i in range(len(rows)):
        for j in range(len(systems)):
            if not np.isnan(values[i, j]):
                best = gap[i, j] == 0
                red, green, blue, _ = image.cmap(image.norm(gap[i, j]))
                light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5  # dark text on the light end of viridis
                axis.text(
                    j,
                    i,
                    f"{values[i, j]:.3f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if light else "white",
                    fontweight="bold" if best else "normal",
                )
                if best:
                    axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=2))
    axis.set_xticks(range(len(systems)), [system.label for system in systems], rotation=40, ha="right", fontsize=8)
    axis.set_yticks(range(len(rows)), [row.name for row in rows], fontsize=8)
    axis.set_title(
        f"{display_name(report.settings.primary)}: best per dataset outlined; colour = distance to the best", fontsize=9
    )
    figure.colorbar(image, ax=axis, fraction=0.03, pad=0.02)
    return _png(figure)


def all_plots(report: Report) -> dict[str, bytes]:
    drawers = {
        "size": size_plot,
        "size_per_dataset": size_per_dataset_plot,
        "in_domain_vs_zero_shot": in_domain_plot,
        "winners": winners_plot,
    }
    return {name: drawers[name](report) for name in PLOTS}
