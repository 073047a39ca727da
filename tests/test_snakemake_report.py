"""Snakemake's own report (`snakemake --report`) holds the results: the leaderboard, beirflow's report page,
the plots, the cost table, published against reproduced, the significance table and every dataset's
metrics, each with its caption and category; as an HTML page that a real browser renders and as a zip."""

from __future__ import annotations

import base64
import csv
import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from beirflow.report.figures import PLOTS
from beirflow.workflow import paths
from conftest import Workflow

pytestmark = pytest.mark.workflow

# Every result the report marks, as Snakemake files them: its category, and the caption's first words.
MARKED = {
    paths.leaderboard("html"): ("Leaderboard", "The leaderboard"),
    paths.leaderboard("csv"): ("Leaderboard", "Every metric of every system"),
    paths.per_query(): ("Leaderboard", "Every per-query value"),
    paths.report("report.html"): ("Report", "beirflow's report"),
    paths.report("published_vs_reproduced.csv"): ("Report", "Published against reproduced"),
    paths.report("significance.csv"): ("Report", "Significance, per dataset"),
    paths.cost(): ("Cost", "What each GPU rule's jobs cost"),
    paths.metrics("scifact-sample"): ("Per dataset", "Every system's evaluation of dataset scifact-sample"),
    **{paths.plot(plot): ("Plots", "One of the paper's plots") for plot in PLOTS},
}


def _embedded_files(page: str) -> dict[str, bytes]:
    """The files a self-contained Snakemake report embeds, by name, decoded from their data URIs."""
    found = re.findall(r"data:[^;,\"]+((?:;[^;,\"]+)*);base64,([A-Za-z0-9+/=]+)", page)
    files = {}
    for parameters, data in found:
        name = re.search(r";filename=([^;]+)", parameters)
        if name:
            files[name[1]] = base64.b64decode(data)
    return files


def _rendered_text(page: Path) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (make install-test installs Debian's chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--no-first-run", "--disable-sync", f"--user-data-dir={page.parent / 'chromium-profile'}"]  # fmt: skip
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False
    ).stdout
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", dom).split())


def test_snakemakes_report_holds_every_result_with_its_caption_and_category(forked: Workflow, tmp_path: Path) -> None:
    page, archive = tmp_path / "report.html", tmp_path / "report.zip"
    forked.run("--report", str(page))
    forked.run("--report", str(archive))
    html = page.read_text(encoding="utf-8")
    for path, (category, caption) in MARKED.items():
        entry = re.search(rf'"{re.escape(path)}": {{"name": "[^"]+", "filename": "[^"]+", .*?"caption": "<p>([^"]*)', html)
        assert entry and entry[1].startswith(caption), path
        assert f'"{category}"' in html, category

    embedded = _embedded_files(html)
    leaderboard = forked.path(paths.leaderboard("csv")).read_bytes()
    assert embedded["leaderboard.csv"] == leaderboard
    assert embedded["report.html"] == forked.path(paths.report("report.html")).read_bytes()
    rows = list(csv.DictReader(io.StringIO(leaderboard.decode())))
    ndcg = {row["system"]: row["value"] for row in rows if row["metric"] == "nDCG@10"}
    assert len(ndcg) == 5 and all(value.encode() in embedded["leaderboard.csv"] for value in ndcg.values())

    rendered = _rendered_text(page)
    for shown in ("Leaderboard", "Per dataset", "Plots", "Report", "Cost", "No Parameter Left Behind"):
        assert shown in rendered, rendered[:2000]

    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        (inside,) = [name for name in names if name.endswith("/leaderboard.csv")]
        assert zipped.read(inside) == leaderboard
        assert "report/report.html" in names and sum(name.endswith(".png") for name in names) >= len(PLOTS)
