"""CQADupStack's forums merged into one dataset: ids prefixed by forum, nothing lost or mixed."""

from __future__ import annotations

import json
from pathlib import Path

from beirflow.data.beir import BeirFiles, prepare_dataset
from beirflow.runs.merge import merge_forums
from conftest import write_beir


def test_forums_merge_into_one_corpus_query_set_and_qrels(tmp_path: Path) -> None:
    # Both forums number their posts from 1: the merge must keep them apart.
    android = write_beir(
        tmp_path / "android",
        [{"_id": "1", "title": "Battery", "text": "drains"}, {"_id": "2", "title": "", "text": "wifi"}],
        [{"_id": "2", "text": "wifi drops"}],
        [("2", "1", 1)],
    )
    gis = write_beir(
        tmp_path / "gis",
        [{"_id": "1", "title": "QGIS", "text": "layers"}],
        [{"_id": "1", "text": "qgis layers"}],
        [("1", "1", 1)],
    )
    output = BeirFiles(tmp_path / "merged", "test")
    counts = merge_forums([("android", BeirFiles(android, "test")), ("gis", BeirFiles(gis, "test"))], output)
    assert counts == {"documents": 3, "queries": 2, "judgements": 2}
    ids = [json.loads(line)["_id"] for line in output.corpus.read_text().splitlines()]
    assert ids == ["android/1", "android/2", "gis/1"]
    prepared = prepare_dataset("cqadupstack-merged", output)
    assert prepared.qrels == {"android/2": {"android/1": 1}, "gis/1": {"gis/1": 1}}
    assert prepared.queries == {"android/2": "wifi drops", "gis/1": "qgis layers"}
