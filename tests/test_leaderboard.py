"""The leaderboard: CSV, Markdown and an HTML page read back from headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from beirflow.data.registry import CQADUPSTACK_FORUMS
from beirflow.report.leaderboard import build_table, load_entries, to_csv, to_html, to_markdown


def _metrics_file(folder: Path, dataset: str, system: str, ndcg: float, queries: int = 10) -> Path:
    path = folder / f"{dataset}.{system}.json"
    evaluation = {
        "run_sha256": f"sha-{dataset}-{system}",
        "judged_queries": queries,
        "metrics": {"ndcg@10": ndcg, "recall@100": ndcg / 2},
    }
    path.write_text(json.dumps({"dataset": dataset, "metrics": ["ndcg@10", "recall@100"], "systems": {system: evaluation}}))
    return path


@pytest.fixture
def entries(tmp_path: Path):
    files = [
        _metrics_file(tmp_path, "msmarco", "bm25", 0.2),
        _metrics_file(tmp_path, "msmarco", "monot5", 0.4),
        _metrics_file(tmp_path, "scifact", "bm25", 0.7),
        _metrics_file(tmp_path, "scifact", "monot5", 0.6),
    ]
    for index, forum in enumerate(CQADUPSTACK_FORUMS):
        files.append(_metrics_file(tmp_path, f"cqadupstack-{forum}", "bm25", 0.1 + index / 100))
        files.append(_metrics_file(tmp_path, f"cqadupstack-{forum}", "monot5", 0.3))
    return load_entries(files)


def test_cqadupstack_is_one_row_and_msmarco_is_out_of_the_average(entries) -> None:
    table = build_table(entries, "ndcg@10")
    assert table.datasets == ["msmarco", "scifact", "cqadupstack"]
    cqa_bm25 = sum(0.1 + i / 100 for i in range(12)) / 12
    assert table.values[("cqadupstack", "bm25")] == pytest.approx(cqa_bm25)
    assert table.averages["bm25"] == pytest.approx((0.7 + cqa_bm25) / 2)
    assert table.averages["monot5"] == pytest.approx((0.6 + 0.3) / 2)


def test_incomplete_cqadupstack_keeps_its_forums(tmp_path: Path) -> None:
    files = [_metrics_file(tmp_path, "cqadupstack-gis", "bm25", 0.3), _metrics_file(tmp_path, "scifact", "bm25", 0.6)]
    assert build_table(load_entries(files), "ndcg@10").datasets == ["cqadupstack-gis", "scifact"]


def test_csv_is_long_with_query_counts_and_hashes(entries) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(entries))))
    assert list(rows[0]) == ["dataset", "system", "metric", "value", "queries", "run_sha256"]
    scifact = [row for row in rows if row["dataset"] == "scifact" and row["system"] == "bm25"]
    assert {(row["metric"], row["value"]) for row in scifact} == {("nDCG@10", "0.700000"), ("R@100", "0.350000")}
    assert scifact[0]["run_sha256"] == "sha-scifact-bm25"
    cqa = [row for row in rows if row["dataset"] == "cqadupstack" and row["metric"] == "nDCG@10"]
    assert len(cqa) == 2 and all(row["queries"] == "120" for row in cqa)


def test_markdown_bolds_the_best_per_dataset(entries) -> None:
    markdown = to_markdown(build_table(entries, "ndcg@10"))
    assert "| scifact | **0.7000** | 0.6000 |" in markdown
    assert "| msmarco | 0.2000 | **0.4000** |" in markdown
    assert re.search(r"\| BEIR average \(2 of 18: scifact, cqadupstack\) \| 0\.\d{4} \| \*\*0\.4500\*\* \|", markdown)


class _TableReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.bars = 0
        self.bold: list[str] = []
        self._in_cell = self._in_bold = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._in_cell = True
            self.rows[-1].append("")
        elif tag == "b":
            self._in_bold = True
        elif tag == "rect":
            self.bars += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False
        elif tag == "b":
            self._in_bold = False

    def handle_data(self, data):
        if self._in_cell and self.rows:
            self.rows[-1][-1] += data.strip()
            if self._in_bold:
                self.bold.append(data.strip())


def rendered_table(html_path: Path) -> _TableReader:
    """The table as headless Chromium renders it (its DOM after load)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (make install-test installs Debian's chromium)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
    ]
    profile = html_path.parent / "chromium-profile"
    result = subprocess.run(
        [chromium, *flags, f"--user-data-dir={profile}", "--dump-dom", html_path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "<table" in result.stdout, result.stderr[-2000:]
    reader = _TableReader()
    reader.feed(result.stdout)
    return reader


def test_html_page_renders_the_table_in_chromium(entries, tmp_path: Path) -> None:
    page = tmp_path / "leaderboard.html"
    page.write_text(to_html(build_table(entries, "ndcg@10")), encoding="utf-8")
    assert "<script src" not in page.read_text() and "<link" not in page.read_text()  # self-contained
    table = rendered_table(page)
    assert table.rows[0] == ["dataset", "bm25", "monot5"]
    assert table.rows[2] == ["scifact", "0.7000", "0.6000"]
    assert table.rows[-1][0] == "BEIR average (2 of 18: scifact, cqadupstack)"
    assert "0.4000" in table.bold and "0.7000" in table.bold
    assert table.bars == 4 * 2  # the chart: 3 datasets and the average, 2 systems each


def test_merged_cqadupstack_stands_beside_the_forum_average(tmp_path: Path) -> None:
    files = [_metrics_file(tmp_path, f"cqadupstack-{forum}", "bm25", 0.3) for forum in CQADUPSTACK_FORUMS]
    files.append(_metrics_file(tmp_path, "cqadupstack-merged", "bm25", 0.4))
    table = build_table(load_entries(files), "ndcg@10")
    assert table.datasets == ["cqadupstack", "cqadupstack-merged"]
    assert table.values[("cqadupstack", "bm25")] == pytest.approx(0.3)
