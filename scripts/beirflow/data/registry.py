"""Which BEIR datasets exist, where their zips are, and how big they are.

URLs, md5 checksums and the corpus/query counts come from ``ir_datasets``: its wheel ships
them as ``ir_datasets/etc/downloads.json`` and ``etc/metadata.json``. The files are read
directly, without importing ``ir_datasets`` (its import costs about a second, and the
workflow plans the DAG from these counts every time it starts).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CQADUPSTACK = "cqadupstack"
CQADUPSTACK_FORUMS = (
    "android",
    "english",
    "gaming",
    "gis",
    "mathematica",
    "physics",
    "programmers",
    "stats",
    "tex",
    "unix",
    "webmasters",
    "wordpress",
)
# BEIR's touche set is the v2 release; ir_datasets keeps v1 under the plain name.
_DOWNLOAD_KEYS = {"webis-touche2020": "webis-touche2020/v2"}
_METADATA_KEYS = {"webis-touche2020": "beir/webis-touche2020/v2"}
DEFAULT_SPLITS = {"msmarco": "dev"}

# BEIR's 18 zero-shot datasets (Thakur et al., 2021), the set a BEIR average is taken over;
# MS MARCO is BEIR's in-domain set and stays out of it.
BEIR_ZERO_SHOT = (
    "trec-covid", "bioasq", "nfcorpus", "nq", "hotpotqa", "fiqa", "signal1m", "trec-news", "robust04",
    "arguana", "webis-touche2020", "cqadupstack", "quora", "dbpedia-entity", "scidocs", "fever", "climate-fever", "scifact",
)  # fmt: skip

# The four BEIR datasets without a public download (licences), and how to make their folders.
LOCAL_ONLY_DATASETS = {
    "bioasq": "BioASQ is not downloadable: register at participants-area.bioasq.org, get Task 8b's training data and the 2020 PubMed baseline, and convert them with BEIR's examples/dataset/bioasq script.",
    "signal1m": "Signal-1M is not downloadable: request it from Signal Media (research.signal-ai.com/datasets/signal1m.html) and convert it with BEIR's signal1m script; qrels from TREC-NEWS 2018's background linking.",
    "trec-news": "TREC-NEWS is not downloadable: get the Washington Post collection v2 from NIST (trec.nist.gov/data/wapost) and convert it with BEIR's trec-news script.",
    "robust04": "Robust04 is not downloadable: get TREC disks 4 and 5 from NIST (trec.nist.gov/data/cd45) and convert them with BEIR's robust04 script.",
}


@dataclass(frozen=True)
class BeirArchive:
    """One BEIR zip: it unpacks into a folder named ``name`` (CQADupStack holds 12 datasets)."""

    name: str
    url: str
    md5: str
    size_bytes: int


@dataclass(frozen=True)
class BeirDataset:
    """A dataset in the BEIR catalogue, with the counts the DAG is planned from."""

    name: str  # beirflow id: 'scifact', 'cqadupstack-android'
    archive: str  # zip that holds it: 'scifact', 'cqadupstack'
    subfolder: str  # folder inside the unpacked archive ('' or 'android')
    default_split: str
    documents: int
    queries: dict[str, int]  # judged queries per split

    def query_count(self, split: str) -> int:
        if split not in self.queries:
            raise KeyError(f"BEIR dataset '{self.name}' has no split '{split}' (known: {sorted(self.queries)})")
        return self.queries[split]


def _ir_datasets_etc() -> Path:
    spec = importlib.util.find_spec("ir_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the ir_datasets package is required for the BEIR catalogue: pip install ir_datasets")
    return Path(next(iter(spec.submodule_search_locations))) / "etc"


@cache
def _etc_json(name: str) -> dict[str, Any]:
    with open(_ir_datasets_etc() / name, encoding="utf-8") as handle:
        return json.load(handle)


def _count(metadata: dict[str, Any], key: str, what: str) -> int:
    entry = metadata[key][what]
    while "_ref" in entry:
        entry = metadata[entry["_ref"]][what]
    return int(entry["count"])


@cache
def beir_archives() -> dict[str, BeirArchive]:
    downloads = _etc_json("downloads.json")["beir"]
    archives = {}
    for name in [key for key in downloads if "/" not in key]:
        entry = downloads[_DOWNLOAD_KEYS.get(name, name)]
        archives[name] = BeirArchive(name, entry["url"], entry["expected_md5"], int(entry.get("size_hint", 0)))
    return archives


def _splits(metadata: dict[str, Any], base_key: str) -> dict[str, int]:
    splits = {
        key.rsplit("/", 1)[1]: _count(metadata, key, "queries")
        for key in metadata
        if key.startswith(base_key + "/") and "queries" in metadata[key] and "qrels" in metadata[key]
    }
    # Datasets with one split only (nq, arguana, ...) keep it under the base key.
    return splits or {"test": _count(metadata, base_key, "queries")}


@cache
def beir_datasets() -> dict[str, BeirDataset]:
    metadata = _etc_json("metadata.json")
    datasets: dict[str, BeirDataset] = {}
    for archive in beir_archives():
        members = [(f"{archive}-{forum}", forum) for forum in CQADUPSTACK_FORUMS] if archive == CQADUPSTACK else [(archive, "")]
        for name, forum in members:
            key = _METADATA_KEYS.get(name, f"beir/{archive}/{forum}" if forum else f"beir/{archive}")
            datasets[name] = BeirDataset(
                name=name,
                archive=archive,
                subfolder=forum,
                default_split=DEFAULT_SPLITS.get(archive, "test"),
                documents=_count(metadata, key, "docs"),
                queries=_splits(metadata, key),
            )
    return datasets


def expand_beir_name(name: str) -> list[str]:
    """'cqadupstack' names its 12 forums; every other BEIR name names itself."""
    if name == CQADUPSTACK:
        return [f"{CQADUPSTACK}-{forum}" for forum in CQADUPSTACK_FORUMS]
    return [name]


def is_cqadupstack_forum(dataset: str) -> bool:
    """One of the 12 forum datasets (not 'cqadupstack-merged', which stands alone)."""
    return dataset in expand_beir_name(CQADUPSTACK)


def leaderboard_group(dataset: str) -> str:
    """The leaderboard row a dataset's metrics land in: CQADupStack forums average into one."""
    return CQADUPSTACK if is_cqadupstack_forum(dataset) else dataset
