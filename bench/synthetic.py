"""Synthetic BEIR datasets at any size, shaped like a real one, for measuring beirflow's stages at scale.

    python bench/synthetic.py --documents 1000000 --queries 7000 --output /tmp/synthetic-1m

Lengths and vocabulary follow a real BEIR corpus (default: SciFact from ../shared/data, else the
sample in data/): each title's and text's word count is drawn from the real ones, and each word
from the real corpus's word frequencies. Each query is written about one document (its words drawn
from that document's text, plus a few from the vocabulary) and judged relevant to it, so retrieval
has something to find. Deterministic from the seed; documents are written as they are drawn, in
blocks, so memory does not grow with the corpus.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCES = (REPO.parent / "shared" / "data" / "scifact", REPO / "data" / "scifact-sample")
BLOCK = 10_000  # documents drawn at once
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class CorpusShape:
    """What is sampled: the real corpus's words with their frequencies, and its lengths in words."""

    words: np.ndarray  # the vocabulary, as an array of str
    probabilities: np.ndarray
    title_lengths: np.ndarray
    text_lengths: np.ndarray
    query_lengths: np.ndarray


def corpus_shape(folder: Path) -> CorpusShape:
    counts: Counter[str] = Counter()
    title_lengths, text_lengths, query_lengths = [], [], []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            document = json.loads(line)
            title, text = WORD.findall(document.get("title", "")), WORD.findall(document["text"])
            counts.update(word.lower() for word in title + text)
            title_lengths.append(len(title))
            text_lengths.append(len(text))
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        query_lengths = [len(WORD.findall(json.loads(line)["text"])) for line in handle]
    words, frequencies = zip(*counts.most_common(), strict=True)
    total = float(sum(frequencies))
    return CorpusShape(
        np.array(words, dtype=object),
        np.array(frequencies, dtype=np.float64) / total,
        np.array(title_lengths),
        np.array(text_lengths),
        np.array([length for length in query_lengths if length > 0]),
    )


def document_id(index: int) -> str:
    return f"doc{index}"


def write_dataset(shape: CorpusShape, output: Path, documents: int, queries: int, seed: int) -> dict[str, int]:
    """Write corpus.jsonl, queries.jsonl and qrels/test.tsv; returns the counts and bytes written."""
    rng = np.random.default_rng(seed)
    targets = np.sort(rng.choice(documents, size=min(queries, documents), replace=False))
    query_words: dict[int, list[str]] = {}
    output.mkdir(parents=True, exist_ok=True)
    (output / "qrels").mkdir(exist_ok=True)
    with open(output / "corpus.jsonl", "w", encoding="utf-8") as corpus:
        next_target = 0
        for start in range(0, documents, BLOCK):
            count = min(BLOCK, documents - start)
            titles = rng.choice(shape.title_lengths, size=count)
            texts = np.maximum(rng.choice(shape.text_lengths, size=count), 1)
            drawn = shape.words[rng.choice(len(shape.words), size=int(titles.sum() + texts.sum()), p=shape.probabilities)]
            offset = 0
            lines = []
            for index in range(count):
                title = drawn[offset : offset + titles[index]]
                text = drawn[offset + titles[index] : offset + titles[index] + texts[index]]
                offset += titles[index] + texts[index]
                lines.append(json.dumps({"_id": document_id(start + index), "title": " ".join(title), "text": " ".join(text)}))
                while next_target < len(targets) and targets[next_target] == start + index:
                    query_words[start + index] = list(text)
                    next_target += 1
            corpus.write("\n".join(lines) + "\n")
    with (
        open(output / "queries.jsonl", "w", encoding="utf-8") as query_file,
        open(output / "qrels" / "test.tsv", "w", encoding="utf-8") as qrels,
    ):
        qrels.write("query-id\tcorpus-id\tscore\n")
        for number, target in enumerate(targets):
            length = int(rng.choice(shape.query_lengths))
            from_document = rng.choice(query_words[int(target)], size=max(1, length - length // 4))
            from_vocabulary = shape.words[rng.choice(len(shape.words), size=length // 4, p=shape.probabilities)]
            words = [*from_document, *from_vocabulary]
            rng.shuffle(words)
            query_file.write(json.dumps({"_id": f"q{number}", "text": " ".join(words)}) + "\n")
            qrels.write(f"q{number}\t{document_id(int(target))}\t1\n")
    written = sum(path.stat().st_size for path in output.rglob("*") if path.is_file())
    return {"documents": documents, "queries": len(targets), "bytes": written}


def source_folder(given: Path | None) -> Path:
    for folder in (given,) if given else SOURCES:
        if folder is not None and (folder / "corpus.jsonl").is_file():
            return folder
    raise SystemExit(f"no real BEIR corpus to take the shape from (looked in {', '.join(map(str, SOURCES))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, required=True)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, help="a BEIR folder whose shape is followed (default: SciFact)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    written = write_dataset(corpus_shape(source_folder(args.source)), args.output, args.documents, args.queries, args.seed)
    print(json.dumps(written))


if __name__ == "__main__":
    main()
