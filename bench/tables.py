"""Rewrite the generated tables of docs/performance.md from the benchmarks' CSV files (`make bench` runs it last).

    python bench/tables.py            # rewrite the tables between their markers
    python bench/tables.py --check    # exit 1 if a table is not what its CSV gives

Each table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; what is between is replaced,
never appended to. NAME is a function of this file, `scaling` and `run_writing_stages` (bench/scaling.csv,
from bench/scaling.py) and `gpu` (bench/throughput.csv's H100 rows, from bench/gpu_throughput.py), or the name of a CSV a
benchmark left in bench/results/ (bench/results.py), shown as it is.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "performance.md"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def scaling() -> str:
    """Every stage at each corpus size: wall time and peak memory, and at the largest size the share of
    the stage's time its integrity records and checks took."""
    rows = [row for row in _rows(REPO / "bench" / "scaling.csv") if int(row["documents"])]
    sizes = sorted({int(row["documents"]) for row in rows})
    stages = list(dict.fromkeys(row["stage"] for row in rows))
    cell = {(row["stage"], int(row["documents"])): row for row in rows}
    largest = sizes[-1]
    header = ["stage", *(f"{size:,} documents" for size in sizes), f"records and checks at {largest:,}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage in stages:
        cells = [stage]
        for size in sizes:
            row = cell.get((stage, size))
            cells.append(f"{float(row['seconds']):.2f} s, {float(row['peak_rss_mb']):,.0f} MB" if row else "")
        row = cell.get((stage, largest))
        checks = float(row.get("integrity_seconds") or 0.0) if row else 0.0
        cells.append(
            f"{checks:.3f} s ({100 * checks / float(row['seconds']):.1f}%)" if row and row.get("integrity_seconds") else ""
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_writing_stages() -> str:
    """Each stage that writes a run, at the sizes measured with ``--premade-lines``: its time against the same
    stage with its run's lines copied instead of formatted (bench/premade_lines.py)."""
    rows = [row for row in _rows(REPO / "bench" / "scaling.csv") if float(row.get("premade_lines_seconds") or 0)]
    lines = [
        "| stage | documents | run written | the stage | with its lines pre-made | pre-made / the stage |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        seconds, premade = float(row["seconds"]), float(row["premade_lines_seconds"])
        lines.append(
            f"| {row['stage']} | {int(row['documents']):,} | {int(row['bytes_written']) / 1e6:,.0f} MB | {seconds:.2f} s |"
            f" {premade:.2f} s | {premade / seconds:.2f} |"
        )
    return "\n".join(lines)


def gpu() -> str:
    """The H100 rows of bench/throughput.csv: what plan_grid.py prices the grid with."""
    rows = [row for row in _rows(REPO / "bench" / "throughput.csv") if row["device"] == "h100"]
    lines = ["| model | kind | precision | per second |", "|---|---|---|---|"]
    lines += [
        f"| {row['model']} | {row['kind']} | {row['precision']} | {float(row['per_second']):,.0f} {row['unit']} |" for row in rows
    ]
    return "\n".join(lines)


def results_table(name: str) -> str:
    """A CSV of bench/results/ as a Markdown table, its columns as written."""
    rows = _rows(REPO / "bench" / "results" / f"{name}.csv")
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[column] for column in header) + " |" for row in rows]
    return "\n".join(lines)


def rerank_throughput() -> str:
    """bench/rerank_throughput.py's rates, each peer's with beirflow's over it: at the peer's defaults against
    beirflow's own (auto batches), at equal settings against beirflow at the peer's batch size."""
    rows = _rows(REPO / "bench" / "results" / "rerank_throughput.csv")
    lines = [
        "| model | pairs | who | settings | pairs/s | beirflow / peer |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours = [other for other in rows if other["model"] == row["model"] and other["who"] == "beirflow"]
        ratio = ""
        if row["who"] != "beirflow" and len(ours) == 2:
            reference = ours[0] if row["settings"].startswith("defaults") else ours[1]
            ratio = f"{float(reference['pairs/s']) / float(row['pairs/s']):.2f}x"
        lines.append(f"| {row['model']} | {row['pairs']} | {row['who']} | {row['settings']} | {row['pairs/s']} | {ratio} |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "scaling": scaling,
    "run_writing_stages": run_writing_stages,
    "gpu": gpu,
    "rerank_throughput": rerank_throughput,
}


def _filled(text: str, match: re.Match[str]) -> str:
    return match[1] + text + "\n" + match[2]


def rewritten(page: str) -> str:
    names = list(dict.fromkeys(re.findall(r"<!-- table:([\w-]+) -->", page)))
    for name in names:
        table: Callable[[], str] = TABLES.get(name) or partial(results_table, name)
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- /table:{name} -->)", re.S)
        if not pattern.search(page):
            raise SystemExit(f"{PAGE}: no <!-- table:{name} --> ... <!-- /table:{name} --> markers")
        text = table()
        page = pattern.sub(partial(_filled, text), page)
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a table is stale")
    args = parser.parse_args()
    page = PAGE.read_text(encoding="utf-8")
    updated = rewritten(page)
    if args.check:
        if updated != page:
            sys.exit(f"{PAGE}: a generated table is stale: run python bench/tables.py")
        return
    PAGE.write_text(updated, encoding="utf-8")


if __name__ == "__main__":
    main()
