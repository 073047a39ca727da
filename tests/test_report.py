"""The report: BEIR averages over BEIR datasets only, findings computed from the metrics,
significance as ranx computes it with Holm's correction, published figures checked, and the
HTML page rendered by headless Chromium with its plots drawn."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from beirflow.data.registry import CQADUPSTACK_FORUMS
from beirflow.report.assemble import build_report
from beirflow.report.figures import all_plots
from beirflow.report.pages import cqadupstack_note, to_html, to_markdown
from beirflow.report.published import Published, read_published
from beirflow.report.results import ReportSettings, SystemInfo, load_results
from beirflow.report.significance import holm, paired_tests
from beirflow.workflow import paths
from beirflow.workflow.errors import DataError

SYSTEMS = [
    SystemInfo("bm25", "bm25", "BM25", kind="BM25", role="first stage"),
    SystemInfo("monot5-small", "rerank", "monoT5-small", "monoT5", 60e6, first_stage="bm25", kind="reranker", role="reranker"),
    SystemInfo("monot5-base", "rerank", "monoT5-base", "monoT5", 220e6, first_stage="bm25", kind="reranker", role="reranker"),
    SystemInfo("monot5-3b", "rerank", "monoT5-3B", "monoT5", 3e9, first_stage="bm25", kind="reranker", role="reranker"),
    SystemInfo("gtr-base", "dense", "GTR-base", "GTR", 110e6, kind="dense", role="dense retriever"),
    SystemInfo("gtr-xxl", "dense", "GTR-XXL", "GTR", 4.8e9, kind="dense", role="dense retriever"),
]
# Mean quality per system: in-domain gains are small with size, zero-shot gains large (the paper's shape).
IN_DOMAIN = {"bm25": 0.19, "monot5-small": 0.36, "monot5-base": 0.38, "monot5-3b": 0.40, "gtr-base": 0.37, "gtr-xxl": 0.39}
ZERO_SHOT = {"bm25": 0.43, "monot5-small": 0.43, "monot5-base": 0.48, "monot5-3b": 0.55, "gtr-base": 0.42, "gtr-xxl": 0.46}
SETTINGS = ReportSettings(primary="ndcg@10", baseline="bm25", permutations=2000)


def _record(
    dataset: str, quality: dict[str, float], seed: int, queries: int = 60, metrics: tuple[str, ...] = ("ndcg@10", "mrr@10")
) -> dict:
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(-0.3, 0.3, size=queries)
    systems = {}
    for system, mean in quality.items():
        per_query = {}
        for metric in metrics:
            values = np.clip(mean + difficulty + rng.normal(0, 0.08, size=queries), 0, 1)
            per_query[metric] = {f"q{index}": float(value) for index, value in enumerate(values)}
        systems[system] = {
            "metrics": {metric: float(np.mean(list(values.values()))) for metric, values in per_query.items()},
            "per_query": per_query,
            "judged_queries": queries,
            "run_sha256": "x",
        }
    return {"dataset": dataset, "metrics": list(metrics), "systems": systems}


def _records() -> list[dict]:
    records = [_record("msmarco", IN_DOMAIN, 1)]
    for seed, dataset in enumerate(["scifact", "nfcorpus", "fiqa", "my-corpus"], start=2):
        records.append(_record(dataset, {s: q + 0.01 * seed for s, q in ZERO_SHOT.items()}, seed))
    for seed, forum in enumerate(CQADUPSTACK_FORUMS, start=10):
        records.append(_record(f"cqadupstack-{forum}", ZERO_SHOT, seed, queries=20))
    return records


@pytest.fixture
def results():
    return load_results(_records(), {"msmarco": None, "my-corpus": None})


@pytest.fixture
def report(results):
    return build_report(results, SYSTEMS, [], SETTINGS)


def _mean(results, dataset: str, system: str, metric: str = "ndcg@10") -> float:
    return results.means[(dataset, system, metric)]


def _beir_average(results, system: str) -> float:
    cqa = np.mean([_mean(results, f"cqadupstack-{forum}", system) for forum in CQADUPSTACK_FORUMS])
    return float(np.mean([_mean(results, dataset, system) for dataset in ("scifact", "nfcorpus", "fiqa")] + [cqa]))


def test_beir_average_takes_beir_datasets_only_and_cqadupstack_once(report, results) -> None:
    assert [row.name for row in report.beir] == ["scifact", "nfcorpus", "fiqa", "cqadupstack"]  # not msmarco, not my-corpus
    from beirflow.report.results import beir_average

    for system in SYSTEMS:
        assert beir_average(results, report.beir, system.name, "ndcg@10").value == pytest.approx(
            _beir_average(results, system.name)
        )
    markdown = to_markdown(report, {})
    assert "BEIR average (4 of 18: scifact, nfcorpus, fiqa, cqadupstack)" in markdown


def test_size_finding_is_computed_from_the_metrics(report, results) -> None:
    sentence = next(s for s in report.findings["size"] if s.startswith("monoT5"))
    small_in, large_in = _mean(results, "msmarco", "monot5-small", "mrr@10"), _mean(results, "msmarco", "monot5-3b", "mrr@10")
    small_out, large_out = _beir_average(results, "monot5-small"), _beir_average(results, "monot5-3b")
    assert f"{large_in - small_in:+.3f} ({small_in:.3f} → {large_in:.3f}" in sentence
    assert f"{large_out - small_out:+.3f} ({small_out:.3f} → {large_out:.3f}" in sentence
    expected = (
        "larger zero-shot" if (large_out - small_out) / small_out > (large_in - small_in) / small_in else "not larger zero-shot"
    )
    assert expected in sentence
    assert any(s.startswith("GTR") for s in report.findings["size"])


def test_rerankers_are_set_against_the_dense_model_nearest_their_size(report, results) -> None:
    sentences = report.findings["rerankers_against_dense"]
    # monoT5-small (60M) and monoT5-base (220M) both sit within 3x of GTR-base (110M); 3B is 1.6x from GTR-XXL.
    base = next(s for s in sentences if s.startswith("monoT5-base"))
    assert "GTR-base" in base and f"{_beir_average(results, 'monot5-base') - _beir_average(results, 'gtr-base'):+.3f}" in base
    large = next(s for s in sentences if s.startswith("monoT5-3B"))
    assert "GTR-XXL" in large
    ahead = sum(
        _beir_average(results, r) > _beir_average(results, d)
        for r, d in (("monot5-small", "gtr-base"), ("monot5-base", "gtr-base"), ("monot5-3b", "gtr-xxl"))
    )
    assert sentences[-1] == f"Rerankers ahead of the dense model of similar size in {ahead} of 3 pairing(s)."


def test_largest_reranker_wins_are_counted_per_beir_dataset(report, results) -> None:
    rows = {
        "scifact": ["scifact"],
        "nfcorpus": ["nfcorpus"],
        "fiqa": ["fiqa"],
        "cqadupstack": [f"cqadupstack-{f}" for f in CQADUPSTACK_FORUMS],
    }
    wins = [
        row
        for row, members in rows.items()
        if all(
            round(np.mean([_mean(results, m, "monot5-3b") for m in members]), 4)
            >= round(np.mean([_mean(results, m, s.name) for m in members]), 4)
            for s in SYSTEMS
        )
    ]
    sentence = report.findings["largest_reranker"][0]
    assert sentence.startswith(f"monoT5-3B, the largest reranker (3B), is best of 6 systems on {len(wins)} of 4 BEIR dataset(s)")


def test_too_few_runs_say_what_is_missing(results) -> None:
    report = build_report(results, SYSTEMS[:2], [], SETTINGS)
    assert report.findings["size"][0].startswith("Size against gain: needs two sizes of one series")
    assert report.findings["rerankers_against_dense"][0].startswith("Rerankers against dense models of similar size: needs")


def test_holm_adjusts_step_down_and_stays_monotone() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_each_system_is_tested_against_bm25_and_its_next_smaller_model(report) -> None:
    scifact = [c for c in report.comparisons if c.dataset == "scifact"]
    pairs = {(c.system, c.against, c.relation) for c in scifact}
    assert ("monot5-3b", "monot5-base", "smaller") in pairs and ("monot5-base", "monot5-small", "smaller") in pairs
    assert ("gtr-xxl", "gtr-base", "smaller") in pairs and ("gtr-base", "bm25", "baseline") in pairs
    assert not any(c.relation == "smaller" and c.system in ("monot5-small", "gtr-base") for c in scifact)
    assert len(scifact) == 5 + 3  # five against BM25, three against a smaller model
    adjusted = holm([c.p_fisher for c in scifact])
    assert [c.holm_fisher for c in scifact] == pytest.approx(adjusted)


def test_paired_tests_equal_ranx_compare_on_real_runs(done) -> None:
    """Our p-values, from the per-query values in metrics.json, equal ranx.compare on the runs."""
    import ranx

    from beirflow.data.beir import read_qrels_trec
    from beirflow.runs.trec import read_run, trec_eval_order

    def rank_scores(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        """Strictly decreasing scores in trec_eval's order, as the evaluation hands ranx, so it cannot reorder ties."""
        orders = {query_id: trec_eval_order(hits) for query_id, hits in run.items()}
        return {
            query_id: {doc_id: float(len(order) - place) for place, doc_id in enumerate(order)}
            for query_id, order in orders.items()
        }

    metrics = json.loads(done.path(paths.metrics("scifact-sample")).read_text())
    qrels = read_qrels_trec(done.path(paths.qrels("scifact-sample")))
    runs = [
        ranx.Run.from_dict(rank_scores(read_run(done.path(metrics["systems"][name]["run"]))), name=name)
        for name in ("bm25-flat", "bm25+minilm")
    ]
    ranx_qrels = ranx.Qrels.from_dict({q: {d: max(r, 0) for d, r in docs.items()} for q, docs in qrels.items() if docs})
    per_query = [metrics["systems"][name]["per_query"]["ndcg@10"] for name in ("bm25-flat", "bm25+minilm")]
    queries = sorted(per_query[0])
    control, treatment = (np.array([values[q] for q in queries]) for values in per_query)
    permutations = 20000
    ours = paired_tests(control, treatment, permutations)
    assert ours == paired_tests(control, treatment, permutations)  # reproducible, unlike ranx's parallel draws
    student = ranx.compare(ranx_qrels, runs, ["ndcg@10"], stat_test="student", max_p=0.05)
    assert ours[0] == pytest.approx(student.comparisons[("bm25-flat", "bm25+minilm")]["ndcg@10"]["p_value"], abs=1e-12)
    fisher = ranx.compare(
        ranx_qrels, runs, ["ndcg@10"], stat_test="fisher", n_permutations=permutations, max_p=0.05, rounding_digits=6
    )
    theirs = fisher.comparisons[("bm25-flat", "bm25+minilm")]["ndcg@10"]["p_value"]
    error = 4 * np.sqrt(theirs * (1 - theirs) / permutations) + 2 / permutations  # both are Monte Carlo estimates
    assert abs(ours[1] - theirs) <= 2 * error, (ours[1], theirs)
    assert ours[1] < 0.05  # the fusion's gain is real on the sample


def _published(dataset: str, system: str, metric: str, value: float) -> Published:
    return Published(dataset, system, metric, value, "test", "-", "-", "", "a source", "p.csv", 2)


def test_published_figures_match_differ_or_wait_for_their_runs(results) -> None:
    monot5 = _mean(results, "scifact", "monot5-3b")
    published = [
        _published("scifact", "monot5-3b", "ndcg@10", round(monot5, 4)),
        _published("nfcorpus", "monot5-3b", "ndcg@10", 0.01),
        _published("trec-covid", "monot5-3b", "ndcg@10", 0.7),
        _published("beir-average", "monot5-3b", "ndcg@10", 0.532),
        _published("scifact", "elsewhere", "ndcg@10", 0.5),
        _published("scifact", "gtr-tuned", "ndcg@10", 0.5),
    ]
    systems = [
        *SYSTEMS[:5],
        SystemInfo("gtr-xxl", "dense", "GTR-XXL", "GTR", 4.8e9, published_as="gtr-tuned", kind="dense", role="dense retriever"),
    ]
    report = build_report(results, systems, published, SETTINGS)
    statuses = [(c.published.dataset, c.system, c.status) for c in report.checks]
    assert statuses == [
        ("scifact", "monot5-3b", "match"), ("nfcorpus", "monot5-3b", "differs"), ("trec-covid", "monot5-3b", "not run"),
        ("beir-average", "monot5-3b", "not comparable"), ("scifact", "gtr-xxl", "differs" if abs(_mean(results, "scifact", "gtr-xxl") - 0.5) > 0.002 else "match"),
    ]  # fmt: skip
    assert report.checks[3].note == "averages 4 of 18 BEIR datasets"
    assert report.unmatched_published == 1


def test_a_bad_published_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "published.csv"
    path.write_text(
        "dataset,system,metric,value,split,first_stage,depth,conventions,source\nscifact,x,ndcg@10,0.5,test,-,-,,s\nscifact,x,ndcg@10,high,test,-,-,,s\n"
    )
    with pytest.raises(DataError, match=r"published\.csv:3: value 'high'"):
        read_published([path])
    path.write_text("dataset,system,value\n")
    with pytest.raises(DataError, match="no column 'metric'"):
        read_published([path])


def test_the_shipped_published_files_read_and_name_configured_systems() -> None:
    from conftest import REPO

    rows = read_published(sorted((REPO / "published").glob("*.csv")))
    assert {
        ("scifact", "bm25-flat", "ndcg@10", 0.6789),
        ("scifact", "all-minilm-l6-v2", "ndcg@10", 0.6451),
        ("msmarco", "monot5-3b", "mrr@10", 0.398),
    } <= {(r.dataset, r.system, r.metric, r.value) for r in rows}
    assert all(row.metric in ("ndcg@10", "mrr@10", "recall@100", "recall@1000") for row in rows)


# ---- the HTML page in a real browser --------------------------------------------------------

_BOXES = """<script>
window.addEventListener('load', () => {
  const boxes = [...document.querySelectorAll('img.plot')].map(img => {
    const r = img.getBoundingClientRect();
    return {id: img.id, x: r.x, y: r.y, w: r.width, h: r.height, decoded: img.complete && img.naturalWidth > 0};
  });
  const pre = document.createElement('pre');
  pre.id = 'boxes';
  pre.textContent = JSON.stringify({boxes, height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (make install-test installs Debian's chromium)")
    return chromium


def _browser(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([chromium, *flags, *args], capture_output=True, text=True, timeout=180, check=False)


def render_in_chromium(page: Path, width: int = 1400) -> tuple[str, dict, np.ndarray]:
    """The DOM after load, each plot's box, and a screenshot of the whole page (RGB array)."""
    from matplotlib.image import imread

    chromium = _chromium()
    probe = page.with_name(page.stem + "-probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _BOXES + "</body>"), encoding="utf-8")
    dom = _browser(chromium, page.parent / "profile", f"--window-size={width},2000", "--dump-dom", probe.as_uri())
    layout = json.loads(re.search(r'<pre id="boxes">(.*?)</pre>', dom.stdout, re.S).group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    shot = page.with_suffix(".png")
    result = _browser(
        chromium,
        page.parent / "profile",
        f"--window-size={width},{int(layout['height']) + 50}",
        f"--screenshot={shot}",
        probe.as_uri(),
    )
    assert shot.is_file(), result.stderr[-2000:]
    return dom.stdout, layout, imread(shot)[..., :3]


def assert_plots_drawn(layout: dict, pixels: np.ndarray, names: list[str]) -> None:
    assert sorted(box["id"] for box in layout["boxes"]) == sorted(f"plot-{name}" for name in names)
    for box in layout["boxes"]:
        assert box["decoded"] and box["w"] > 100 and box["h"] > 100, box
        region = pixels[int(box["y"]) : int(box["y"] + box["h"]), int(box["x"]) : int(box["x"] + box["w"])]
        inked = (region.min(axis=2) < 0.85).mean()  # not white or near-white
        colours = len({tuple(pixel) for pixel in (region[::4, ::4] * 255).astype(int).reshape(-1, 3)})
        assert inked > 0.01 and colours > 20, (box["id"], inked, colours)
    blank = pixels[:, -20:]  # the right margin, beyond every plot: the check can tell blank from drawn
    assert (blank.min(axis=2) < 0.85).mean() < 0.01


def table_rows(dom: str, table_id: str) -> list[list[str]]:
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', dom, re.S)
    assert table, table_id
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    ]


def test_report_page_renders_its_plots_and_tables_in_chromium(report, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    plots = all_plots(report)
    page.write_text(to_html(report, plots), encoding="utf-8")
    text = page.read_text()
    assert "<script src" not in text and "<link" not in text  # self-contained
    dom, layout, pixels = render_in_chromium(page)
    assert_plots_drawn(layout, pixels, list(plots))
    rows = table_rows(dom, "leaderboard")
    assert rows[0] == ["dataset", "BM25", "monoT5-small", "monoT5-base", "monoT5-3B", "GTR-base", "GTR-XXL"]
    assert [row[0] for row in rows[1:]] == [
        "msmarco",
        "scifact",
        "nfcorpus",
        "fiqa",
        "my-corpus",
        "cqadupstack",
        "BEIR average (4 of 18)",
    ]
    assert re.search(r'<p id="beir-average-over">BEIR average \(4 of 18\) over: scifact, nfcorpus, fiqa, cqadupstack\.</p>', dom)
    findings = re.findall(r'<li data-finding="(\w+)">', dom)
    assert findings == ["size", "rerankers_against_dense", "largest_reranker"]


def test_incomplete_forums_stay_out_of_the_average_and_merged_cqadupstack_can_stand_in() -> None:
    records = [r for r in _records() if r["dataset"] != "cqadupstack-gis"]
    partial = build_report(load_results(records, {"msmarco": None, "my-corpus": None}), SYSTEMS, [], SETTINGS)
    assert [row.name for row in partial.beir] == ["scifact", "nfcorpus", "fiqa"]
    merged = [*records, {**_record("cqadupstack-merged", ZERO_SHOT, 99), "dataset": "cqadupstack-merged"}]
    beir_names = {"msmarco": None, "my-corpus": None, "cqadupstack-merged": "cqadupstack"}
    assert [row.name for row in build_report(load_results(merged, beir_names), SYSTEMS, [], SETTINGS).beir] == [
        "scifact",
        "nfcorpus",
        "fiqa",
        "cqadupstack-merged",
    ]
    complete = [*_records(), {**_record("cqadupstack-merged", ZERO_SHOT, 99), "dataset": "cqadupstack-merged"}]
    for choice, expected in (("forums", "cqadupstack"), ("merged", "cqadupstack-merged")):
        settings = ReportSettings(primary="ndcg@10", baseline="bm25", permutations=200, cqadupstack=choice)
        both = build_report(load_results(complete, beir_names), SYSTEMS, [], settings)
        assert both.beir[-1].name == expected
        assert cqadupstack_note(both) == (
            "CQADupStack rows: cqadupstack: the average of its 12 forums, BEIR's way; "
            f"cqadupstack-merged: one merged index and query set, the paper's way. The BEIR average takes {expected}."
        )


def test_the_embedded_default_shows_the_whole_report(done, tmp_path: Path) -> None:
    """The newcomer's report: the sample's systems, its BEIR average named, every plot drawn."""
    import csv

    page = tmp_path / "report.html"
    shutil.copy(done.path(paths.report("report.html")), page)
    dom, layout, pixels = render_in_chromium(page)
    assert_plots_drawn(layout, pixels, ["size", "size_per_dataset", "in_domain_vs_zero_shot", "winners"])
    rows = table_rows(dom, "leaderboard")
    assert rows[0] == [
        "dataset",
        "bm25-flat",
        "bm25-multifield",
        "MiniLM-L6 bi-encoder reranker",
        "MiniLM-L6 dense",
        "bm25+minilm",
    ]
    assert [row[0] for row in rows[1:]] == ["scifact-sample", "BEIR average (1 of 18)"]
    assert "BEIR average (1 of 18) over: scifact-sample." in dom
    with open(done.path(paths.report("significance.csv")), encoding="utf-8") as handle:
        tests = {row["system"]: row for row in csv.DictReader(handle) if row["relation"] == "baseline"}
    assert set(tests) == {"bm25-multifield", "minilm-rerank", "minilm", "bm25+minilm"}
    for cell, system in zip(rows[1][2:], ["bm25-multifield", "minilm-rerank", "minilm", "bm25+minilm"], strict=False):
        assert cell.endswith("†") == (tests[system]["significant"] == "yes"), (system, cell)
    assert len(re.findall(r'<li data-finding="\w+">', dom)) == 3
    for name in ("size", "size_per_dataset", "in_domain_vs_zero_shot", "winners"):
        assert done.path(paths.plot(name)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_leaderboard_and_the_report_print_one_beir_average(tmp_path: Path) -> None:
    """One set of metrics with a local non-BEIR dataset and both CQADupStack forms: the leaderboard's
    headline numbers are the report's, whichever form the average takes."""
    import json

    from beirflow.report.leaderboard import build_table, load_entries
    from beirflow.report.leaderboard import to_markdown as leaderboard_markdown

    records = [*_records(), {**_record("cqadupstack-merged", ZERO_SHOT, 99), "dataset": "cqadupstack-merged"}]
    files = []
    for record in records:
        for evaluation in record["systems"].values():
            evaluation["run_sha256"] = "x"
        files.append(tmp_path / f"{record['dataset']}.json")
        files[-1].write_text(json.dumps(record), encoding="utf-8")
    beir_names = {"msmarco": None, "my-corpus": None, "cqadupstack-merged": "cqadupstack"}
    for choice in ("forums", "merged"):
        settings = ReportSettings(primary="ndcg@10", baseline="bm25", permutations=200, cqadupstack=choice)
        report = build_report(load_results(records, beir_names), SYSTEMS, [], settings)
        table = build_table(load_entries(files), "ndcg@10", beir_names=beir_names, cqadupstack=choice)
        from beirflow.report.results import beir_average

        assert table.averaged == tuple(row.name for row in report.beir)
        assert "my-corpus" not in table.averaged and "msmarco" not in table.averaged
        for system in SYSTEMS:
            assert table.averages[system.name] == beir_average(report.results, report.beir, system.name, "ndcg@10").value
        report_row = next(line for line in to_markdown(report, {}).splitlines() if "BEIR average (" in line)
        leaderboard_row = next(line for line in leaderboard_markdown(table).splitlines() if "BEIR average (" in line)
        assert report_row.split("|")[1] == leaderboard_row.split("|")[1]  # the same label, naming the same rows
        assert _numbers(report_row) == _numbers(leaderboard_row), (report_row, leaderboard_row)


def _numbers(line: str) -> list[str]:
    return re.findall(r"\d\.\d{4}", line)


_LEGIBILITY = """<script>
window.addEventListener('load', () => {
  const over = el => el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1;
  const cells = [...document.querySelectorAll('th, td, h1, h2, p, li, figcaption')]
    .filter(el => getComputedStyle(el).overflow !== 'visible' ? false : over(el) && el.closest('div.scroll') === null)
    .map(el => el.tagName + ': ' + el.textContent.slice(0, 60));
  const boxes = [...document.querySelectorAll('div.scroll')].map(box => ({id: box.id, scrolls: box.scrollWidth > box.clientWidth}));
  const pre = document.createElement('pre');
  pre.id = 'legibility';
  pre.textContent = JSON.stringify({page: document.documentElement.scrollWidth - window.innerWidth, cells, boxes});
  document.body.appendChild(pre);
});
</script>"""


def _paper_grid_report(tmp_path: Path):
    """The report of config/paper.yaml with every extension on: each of its systems on each dataset it runs,
    metrics drawn per query (quality growing with size, rerankers ahead), the repo's published figures."""
    import yaml

    from beirflow.workflow.plan import build
    from conftest import REPO

    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text(encoding="utf-8"))
    for family in ("bm25", "rerank", "dense", "fusion"):
        for entry in (config.get(family) or {}).values():
            entry["enabled"] = True
    plan = build(config, check_models=False)
    systems = [SystemInfo(**system) for system in plan.report_systems()]
    rng = np.random.default_rng(7)
    records = []
    for dataset in plan.datasets:
        level = rng.uniform(0.25, 0.55)
        quality = {
            system.name: level + 0.02 * np.log10((system.parameters or 1e7) / 1e7) + (0.05 if system.family == "rerank" else 0)
            for system in systems
            if plan.runs_on(system.name, dataset)
        }
        records.append(_record(dataset, quality, int(rng.integers(1 << 30)), queries=30))
    settings = ReportSettings(**{**plan.report_settings(), "permutations": 500})
    published = read_published(sorted((REPO / "published").glob("*.csv")))
    return plan, build_report(load_results(records, plan.report_datasets()), systems, published, settings)


def test_the_report_of_the_whole_paper_grid_is_legible_in_chromium(tmp_path: Path) -> None:
    """23 systems on 19 datasets and 12 forums: every plot drawn, each series its own colour in every plot,
    the wide tables scrolling inside their boxes (the page never does), no text running out of its box."""
    from beirflow.report.figures import series_styles

    plan, report = _paper_grid_report(tmp_path)
    assert len(report.systems) == len(plan.systems) >= 23 and len(report.rows) == 20  # CQADupStack's forums in one row
    plots = all_plots(report)
    page = tmp_path / "report.html"
    page.write_text(to_html(report, plots).replace("</body>", _LEGIBILITY + "</body>"), encoding="utf-8")
    dom, layout, pixels = render_in_chromium(page)
    assert_plots_drawn(layout, pixels, list(plots))
    legibility = json.loads(re.search(r'<pre id="legibility">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    assert legibility["page"] <= 0, "the page scrolls sideways"
    assert legibility["cells"] == [], legibility["cells"]
    assert {box["id"]: box["scrolls"] for box in legibility["boxes"]}["leaderboard-box"], "23 columns fit without scrolling?"
    rows = table_rows(dom, "leaderboard")
    assert len(rows[0]) == 1 + len(report.systems) and rows[-1][0] == "BEIR average (18 of 18)"
    styles = series_styles(report)
    assert len({style.colour for style in styles.values()}) == len(styles) >= 9  # one colour per series, none shared
    for name in ("size_per_dataset", "in_domain_vs_zero_shot"):
        box = next(box for box in layout["boxes"] if box["id"] == f"plot-{name}")
        region = pixels[int(box["y"]) : int(box["y"] + box["h"]), int(box["x"]) : int(box["x"] + box["w"])]
        drawn = {key: _has_colour(region, style.colour) for key, style in styles.items()}
        expected = dict.fromkeys(styles, True)
        if name == "in_domain_vs_zero_shot":  # drawn where there is an in-domain run or a full BEIR average
            expected = {key: key in _series_in_domain_or_averaged(report) for key in styles}
        assert drawn == expected, (name, drawn)


def _has_colour(region: np.ndarray, colour: str, tolerance: float = 0.04) -> bool:
    """Whether at least a few pixels of ``region`` (RGB floats) are ``colour`` (antialiasing aside)."""
    target = np.array([int(colour[index : index + 2], 16) / 255 for index in (1, 3, 5)])
    return int((np.abs(region - target).max(axis=2) < tolerance).sum()) >= 5


def _series_in_domain_or_averaged(report) -> set[str]:
    from beirflow.report.results import beir_average

    settings = report.settings
    return {
        system.series or system.label
        for system in report.systems
        if system.parameters
        and (
            beir_average(report.results, report.beir, system.name, settings.primary).value is not None
            or (settings.in_domain, system.name, settings.in_domain_metric) in report.results.means
        )
    }
