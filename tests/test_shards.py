"""Shards: deterministic, and joined in order they give the input back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beirflow.data.beir import iter_jsonl
from beirflow.data.shards import join_shards, write_shards
from beirflow.workflow.errors import DataError
from conftest import SAMPLE


def _records(path: Path) -> list[dict]:
    return [record for _, record in iter_jsonl(path)]


@pytest.mark.parametrize("per_shard", [1, 7, 64, 600, 1000])
def test_joining_shards_gives_the_corpus_back(tmp_path: Path, per_shard: int) -> None:
    corpus = SAMPLE / "corpus.jsonl"
    count = write_shards(corpus, tmp_path / "shards", per_shard)
    assert count == -(-600 // per_shard)
    assert sorted(path.name for path in (tmp_path / "shards").glob("*.jsonl")) == [f"{i:04d}.jsonl" for i in range(count)]
    assert list(join_shards(tmp_path / "shards")) == _records(corpus)
    sizes = [len(_records(tmp_path / "shards" / f"{i:04d}.jsonl")) for i in range(count)]
    assert all(size == per_shard for size in sizes[:-1]) and 0 < sizes[-1] <= per_shard


def test_same_input_and_size_give_identical_shards(tmp_path: Path) -> None:
    write_shards(SAMPLE / "queries.jsonl", tmp_path / "a", 16)
    write_shards(SAMPLE / "queries.jsonl", tmp_path / "b", 16)
    for first in sorted((tmp_path / "a").iterdir()):
        assert first.read_bytes() == (tmp_path / "b" / first.name).read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest == {"source": str(SAMPLE / "queries.jsonl"), "records": 50, "per_shard": 16, "shards": 4}


def test_count_differing_from_the_plan_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="planned with 5"):
        write_shards(SAMPLE / "queries.jsonl", tmp_path / "shards", 16, expected_shards=5)
    assert not (tmp_path / "shards").exists()
    assert list(tmp_path.iterdir()) == []
