"""Write a published/ file from one condition of Pyserini's BEIR regressions (pyserini/2cr/beir.yaml in the
installed Pyserini), one row per dataset and metric.

    python scripts/published_from_2cr.py splade-pp-ed          # rewrite published/pyserini-splade.csv
    python scripts/published_from_2cr.py splade-pp-ed --check  # exit 1 if the file is not what 2CR gives

A test runs ``--check``, so the file cannot drift from the figures Pyserini ships.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("dataset", "system", "metric", "value", "split", "first_stage", "depth", "conventions", "source")
METRICS = {"nDCG@10": "ndcg@10", "R@100": "recall@100", "R@1000": "recall@1000"}  # 2CR's names -> ranx's


@dataclass(frozen=True)
class Condition:
    system: str  # the system id the rows carry
    output: str  # under published/
    conventions: str


CONDITIONS: Mapping[str, Condition] = {
    "splade-pp-ed": Condition(
        "splade-pp-ed",
        "pyserini-splade.csv",
        "SPLADE++ ED (naver/splade-cocondenser-ensembledistil), title and text encoded, weights quantized "
        "round(w / 5 * 256); impact search, top 1000; hits equal to the query id removed; trec_eval -c",
    ),
}


def regressions() -> dict[str, Any]:
    import pyserini

    return yaml.safe_load((Path(pyserini.__file__).parent / "2cr" / "beir.yaml").read_text(encoding="utf-8"))


def table(name: str, condition: Condition, beir: Mapping[str, Any]) -> str:
    found = [entry for entry in beir["conditions"] if entry["name"] == name]
    if not found:
        raise SystemExit(f"pyserini/2cr/beir.yaml has no condition '{name}'")
    source = f"castorini/pyserini pyserini/2cr/beir.yaml (BEIR regressions, condition {name})"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for dataset in found[0]["datasets"]:
        (scores,) = dataset["scores"]
        for metric, value in scores.items():
            writer.writerow(
                [dataset["dataset"], condition.system, METRICS[metric], value, "test", "-", 1000, condition.conventions, source]
            )
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("condition", choices=sorted(CONDITIONS))
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    args = parser.parse_args()
    condition = CONDITIONS[args.condition]
    wanted = table(args.condition, condition, regressions())
    path = REPO / "published" / condition.output
    if args.check:
        if not path.is_file() or path.read_text(encoding="utf-8") != wanted:
            sys.exit(
                f"{path} is not what pyserini/2cr/beir.yaml gives: run python scripts/published_from_2cr.py {args.condition}"
            )
        return
    path.write_text(wanted, encoding="utf-8")
    print(f"wrote {path}: {wanted.count(chr(10)) - 1} rows")


if __name__ == "__main__":
    main()
