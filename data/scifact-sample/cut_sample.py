"""Cut the embedded SciFact sample from a full BEIR SciFact folder.

A fixed random subset of the test queries, every document judged for them, and a fixed
random sample of the other documents; lines keep their order in the source files.

    python data/scifact-sample/cut_sample.py --source ../shared/data/scifact --output data/scifact-sample
"""

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--documents", type=int, default=600, help="corpus size, judged documents included")
    parser.add_argument("--seed", type=int, default=20221013)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    qrels_lines = (args.source / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = qrels_lines[0], [line.split("\t") for line in qrels_lines[1:] if line.strip()]
    test_queries = sorted({row[0] for row in rows}, key=int)
    chosen = set(rng.sample(test_queries, args.queries))
    kept_rows = [row for row in rows if row[0] in chosen]
    judged = {row[1] for row in kept_rows}

    corpus_lines = (args.source / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    corpus_ids = [json.loads(line)["_id"] for line in corpus_lines]
    others = sorted(set(corpus_ids) - judged)
    sampled = judged | set(rng.sample(others, args.documents - len(judged)))

    (args.output / "qrels").mkdir(parents=True, exist_ok=True)
    (args.output / "qrels" / "test.tsv").write_text(
        "\n".join([header, *("\t".join(row) for row in kept_rows)]) + "\n", encoding="utf-8"
    )
    with open(args.output / "corpus.jsonl", "w", encoding="utf-8") as out:
        out.writelines(line + "\n" for line, doc_id in zip(corpus_lines, corpus_ids, strict=False) if doc_id in sampled)
    with open(args.output / "queries.jsonl", "w", encoding="utf-8") as out:
        for line in (args.source / "queries.jsonl").read_text(encoding="utf-8").splitlines():
            if json.loads(line)["_id"] in chosen:
                out.write(line + "\n")


if __name__ == "__main__":
    main()
