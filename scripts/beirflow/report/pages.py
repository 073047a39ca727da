"""The report written out: Markdown, a self-contained HTML page (plots inlined), and CSV tables."""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Sequence

from beirflow.data.registry import BEIR_ZERO_SHOT
from beirflow.evaluate.metrics import display_name
from beirflow.report.assemble import Report
from beirflow.report.cells import score_cells
from beirflow.report.html_page import page
from beirflow.report.html_page import table as html_table
from beirflow.report.published import Check
from beirflow.report.results import Row, beir_average, is_forum_row, row_value
from beirflow.report.significance import Comparison

MARK_BASELINE, MARK_SMALLER = "†", "‡"
FINDING_TITLES = {
    "size": "Size: in-domain against zero-shot gain",
    "rerankers_against_dense": "Rerankers against dense models of similar size",
    "largest_reranker": "Where the largest reranker is best",
}
PLOT_TITLES = {
    "size": "BEIR average against parameter count",
    "size_per_dataset": "Per dataset against parameter count",
    "in_domain_vs_zero_shot": "In-domain (MS MARCO) and zero-shot (BEIR) side by side",
    "winners": "Winners per dataset",
}


def _markers(report: Report, row: Row, system: str) -> str:
    if len(row.members) != 1:
        return ""
    marks = ""
    for comparison in report.comparisons:
        if comparison.dataset == row.members[0] and comparison.system == system and comparison.significant(report.settings.max_p):
            marks += MARK_BASELINE if comparison.relation == "baseline" else MARK_SMALLER
    return marks


def cqadupstack_note(report: Report) -> str:
    """Which convention each CQADupStack row follows, where there is one."""
    notes = []
    for row in report.rows:
        if row.beir_name != "cqadupstack" or is_forum_row(row):
            continue
        notes.append(
            f"{row.name}: {'the average of its 12 forums, BEIR' if len(row.members) > 1 else 'one merged index and query set, the paper'}'s way"
        )
    if not notes:
        return ""
    taken = next((row.name for row in report.beir if row.beir_name == "cqadupstack"), None)
    return "CQADupStack rows: " + "; ".join(notes) + (f". The BEIR average takes {taken}." if taken else ".")


def average_label(report: Report, listed: bool = True) -> str:
    """'BEIR average (n of 18: the rows)'; without ``listed`` the rows are left to a note beside the table
    (the HTML page's, where 18 names in one cell would make it the table's tallest row)."""
    counted = f"BEIR average ({len(report.beir)} of {len(BEIR_ZERO_SHOT)}"
    return f"{counted}: {averaged_rows(report)})" if listed else f"{counted})"


def averaged_rows(report: Report) -> str:
    """The rows the BEIR average takes, by name."""
    return ", ".join(row.name for row in report.beir) or "none run"


def main_table(report: Report, listed: bool = True) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, rows of cells and, per row, whether it is the average row (its label as :func:`average_label`)."""
    metric = report.settings.primary
    header = ["dataset", *(system.label for system in report.systems)]
    body, is_average = [], []
    for row in report.rows:
        values = [row_value(report.results, row, system.name, metric) for system in report.systems]
        marks = [_markers(report, row, system.name) for system in report.systems]
        body.append([row.name, *score_cells(values, ("**", "**"), marks)])
        is_average.append(False)
    averages = [beir_average(report.results, report.beir, system.name, metric).value for system in report.systems]
    cells = [average_label(report, listed), *score_cells(averages, ("**", "**"))]
    body.append(cells)
    is_average.append(True)
    return header, body, is_average


def _significance_note(report: Report) -> str:
    settings = report.settings
    return (f"{MARK_BASELINE}: differs from {settings.baseline or 'the baseline'}, {MARK_SMALLER}: differs from the next smaller model of its series; "
            f"both tests (ranx: paired Student's t, Fisher's randomisation with {settings.permutations} permutations) at p ≤ {settings.max_p} after Holm's correction "
            "over the dataset's comparisons. CQADupStack's forum average carries no marks (each forum is tested; see the significance table).")  # fmt: skip


def _filled(checks: Sequence[Check]) -> list[Check]:
    """The published figures the runs at hand give a reproduced value for."""
    return [check for check in checks if check.reproduced is not None]


def published_rows(checks: Sequence[Check]) -> list[list[str]]:
    rows = []
    for check in checks:
        published = check.published
        difference = check.difference
        rows.append([
            published.dataset, check.system, display_name(published.metric), f"{published.value:.4f}",
            "–" if check.reproduced is None else f"{check.reproduced:.4f}",
            "–" if difference is None else f"{round(difference, 4) + 0.0:+.4f}", check.status + (f" ({check.note})" if check.note else ""),
            f"{published.first_stage}, depth {published.depth}" if published.first_stage != "-" else "first stage",
            published.conventions, published.source,
        ])  # fmt: skip
    return rows


PUBLISHED_HEADER = [
    "dataset",
    "system",
    "metric",
    "published",
    "reproduced",
    "difference",
    "status",
    "run",
    "conventions",
    "source",
]
SIGNIFICANCE_HEADER = [
    "dataset",
    "system",
    "against",
    "relation",
    "delta",
    "p_student",
    "p_fisher",
    "holm_student",
    "holm_fisher",
    "significant",
]


def significance_rows(comparisons: Sequence[Comparison], max_p: float) -> list[list[str]]:
    return [
        [
            c.dataset,
            c.system,
            c.against,
            c.relation,
            f"{c.delta:+.4f}",
            f"{c.p_student:.4g}",
            f"{c.p_fisher:.4g}",
            f"{c.holm_student:.4g}",
            f"{c.holm_fisher:.4g}",
            "yes" if c.significant(max_p) else "no",
        ]
        for c in comparisons
    ]


def to_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def _status_summary(report: Report) -> str:
    counts: dict[str, int] = {}
    for check in report.checks:
        counts[check.status] = counts.get(check.status, 0) + 1
    shown = ", ".join(f"{count} {status}" for status, count in counts.items()) or "none"
    return (f"Published figures of configured systems: {shown} (tolerance ±{report.settings.tolerance}); "
            f"{report.unmatched_published} more concern systems this config does not run.")  # fmt: skip


def unscored_note(report: Report) -> str:
    """Datasets whose qrels hold no relevant judgement: nothing on them is scored, bolded or averaged."""
    unscored = report.results.unscored
    return ("Not scored: " + "; ".join(f"{dataset} ({why})" for dataset, why in unscored.items()) + ".") if unscored else ""


def to_markdown(report: Report, plot_files: dict[str, str]) -> str:
    settings = report.settings
    lines = [
        "# beirflow report",
        "",
        f"Systems: {', '.join(f'{s.label} ({s.kind})' for s in report.systems)}. Baseline: {settings.baseline or 'none'}.",
        "",
    ]
    lines += ["## Findings", ""]
    for key, sentences in report.findings.items():
        lines.append(f"**{FINDING_TITLES[key]}.** " + " ".join(sentences))
        lines.append("")
    header, body, _ = main_table(report)
    lines += [
        f"## {display_name(settings.primary)} per dataset",
        "",
        "Best per dataset in bold. " + _significance_note(report),
        "",
    ]
    lines += _md_table(header, body)
    if report.results.unscored:
        lines += ["", unscored_note(report)]
    if cqadupstack_note(report):
        lines += ["", cqadupstack_note(report)]
    lines += ["", "## Published against reproduced", "", _status_summary(report), ""]
    filled = _filled(report.checks)
    lines += (
        _md_table(PUBLISHED_HEADER[:8], [row[:8] for row in published_rows(filled)])
        if filled
        else ["No run at hand has a published figure."]
    )
    lines += ["", "Rows not run yet, conventions and sources: published_vs_reproduced.csv.", "", "## Plots", ""]
    lines += [f"![{PLOT_TITLES[name]}]({path})" for name, path in plot_files.items()]
    lines += ["", "## Significance", "", f"All comparisons: significance.csv ({len(report.comparisons)} tests)."]
    return "\n".join(lines) + "\n"


def _sentences_html(sentences: Sequence[str]) -> str:
    """One sentence inline; several (a series each, on the paper's grid) one per line."""
    if len(sentences) <= 1:
        return html.escape(" ".join(sentences))
    return "<ul>" + "".join(f"<li>{html.escape(sentence)}</li>" for sentence in sentences) + "</ul>"


def to_html(report: Report, plots: dict[str, bytes]) -> str:
    settings = report.settings
    header, rows, is_average = main_table(report, listed=False)
    findings = "".join(
        f'<li data-finding="{key}"><b>{html.escape(FINDING_TITLES[key])}.</b> {_sentences_html(sentences)}</li>'
        for key, sentences in report.findings.items()
    )
    figures = "".join(
        f'<figure><img class="plot" id="plot-{name}" alt="{html.escape(PLOT_TITLES[name])}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
        f"<figcaption>{html.escape(PLOT_TITLES[name])}</figcaption></figure>"
        for name, data in plots.items()
    )  # fmt: skip
    body = f"""<p>Systems: {html.escape(", ".join(f"{s.label} ({s.kind})" for s in report.systems))}. Baseline: {html.escape(settings.baseline or "none")}.</p>
<h2>Findings</h2>
<ul id="findings">{findings}</ul>
<h2>{html.escape(display_name(settings.primary))} per dataset</h2>
<p>Best per dataset in bold. {html.escape(_significance_note(report))}</p>
{html_table("leaderboard", header, rows, is_average)}
<p id="beir-average-over">{html.escape(average_label(report, listed=False))} over: {html.escape(averaged_rows(report))}.</p>
<p id="cqadupstack">{html.escape(cqadupstack_note(report))}</p>
<p id="unscored">{html.escape(unscored_note(report))}</p>
<h2>Plots</h2>
{figures}
<h2>Published against reproduced</h2>
<p>{html.escape(_status_summary(report))}</p>
{html_table("published", PUBLISHED_HEADER, published_rows(_filled(report.checks))) if _filled(report.checks) else "<p>No run at hand has a published figure.</p>"}
<p>Rows not run yet: published_vs_reproduced.csv.</p>
<h2>Significance</h2>
{html_table("significance", SIGNIFICANCE_HEADER, significance_rows(report.comparisons, settings.max_p))}"""
    return page("beirflow report", body)
