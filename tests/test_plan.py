"""The BEIR catalogue and the plan: known counts, CQADupStack's forums, splits, shard counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from beirflow.data.registry import CQADUPSTACK_FORUMS, beir_archives, beir_datasets, leaderboard_group
from beirflow.data.shards import shard_count, shard_ids
from beirflow.workflow.dataset_plan import plan_datasets
from beirflow.workflow.errors import ConfigError
from beirflow.workflow.systems import plan_systems
from conftest import REPO, SAMPLE


def test_catalogue_knows_every_public_beir_dataset_with_counts() -> None:
    datasets = beir_datasets()
    scifact = datasets["scifact"]
    assert (scifact.documents, scifact.query_count("test")) == (5183, 300)
    assert datasets["msmarco"].default_split == "dev"
    assert datasets["msmarco"].query_count("dev") == 6980
    assert datasets["msmarco"].documents == 8841823
    assert datasets["nq"].query_count("test") == 3452
    # BEIR's touche is the v2 release (49 queries, 2,214 judgements), not ir_datasets' v1 default.
    assert beir_archives()["webis-touche2020"].url.endswith("/webis-touche2020.zip")
    assert sum(name.startswith("cqadupstack-") for name in datasets) == 12
    assert datasets["cqadupstack-android"].archive == "cqadupstack"
    assert beir_archives()["scifact"].md5 == "5f7d1de60b170fc8027bb7898e2efca1"


def test_plan_resolves_beir_names_cqadupstack_and_local_folders(tmp_path: Path) -> None:
    plans = plan_datasets(
        {"scifact": None, "cqadupstack": {}, "covid": {"beir": "trec-covid"}, "mine": {"path": str(SAMPLE)}}, tmp_path
    )
    assert [name for name in plans if name.startswith("cqadupstack-")] == [f"cqadupstack-{forum}" for forum in CQADUPSTACK_FORUMS]
    assert plans["cqadupstack-gis"].folder == tmp_path / "cqadupstack" / "gis"
    assert plans["scifact"].folder == tmp_path / "scifact"
    assert plans["trec-covid"].archive == "trec-covid"
    assert plans["mine"].is_local and plans["mine"].split == "test"
    assert (plans["mine"].document_count(), plans["mine"].query_count()) == (600, 50)
    assert plans["scifact"].query_count() == 300


def test_unknown_dataset_and_split_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'robust04' is not a BEIR dataset with a public download"):
        plan_datasets({"robust04": None}, tmp_path)
    with pytest.raises(KeyError, match="no split 'dev'"):
        plan_datasets({"scifact": {"split": "dev"}}, tmp_path)
    with pytest.raises(ConfigError, match="named twice"):
        plan_datasets({"cqadupstack": None, "cqadupstack-gis": {"path": "x"}}, tmp_path)


def test_system_names_are_unique_across_families() -> None:
    assert plan_systems({"bm25": {"a": {}, "b": {}}}) == {"a": "bm25", "b": "bm25"}
    with pytest.raises(ConfigError, match="both 'bm25' and 'rerank'"):
        plan_systems({"bm25": {"a": {}}, "rerank": {"a": {}}})


def test_shard_counts() -> None:
    assert shard_count(300, 100) == 3
    assert shard_count(301, 100) == 4
    assert shard_count(0, 100) == 1
    assert shard_ids(3) == ["0000", "0001", "0002"]
    with pytest.raises(ConfigError, match="raise the shard size"):
        shard_count(8_841_823, 100)


def test_cqadupstack_forums_share_one_leaderboard_row() -> None:
    assert leaderboard_group("cqadupstack-tex") == "cqadupstack"
    assert leaderboard_group("scifact") == "scifact"
    assert leaderboard_group("cqadupstack-merged") == "cqadupstack-merged"  # the paper's merged index is its own row


def test_local_counts_are_declared_or_counted_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import beirflow.workflow.dataset_plan as plan

    monkeypatch.setattr(plan, "COUNT_CACHE", tmp_path / "counts.json")
    declared = plan_datasets({"bioasq": {"path": str(tmp_path / "absent"), "documents": 14914602, "queries": 500}}, tmp_path)[
        "bioasq"
    ]
    assert (declared.document_count(), declared.query_count(), declared.beir_name) == (14914602, 500, "bioasq")  # no file read
    counted = plan_datasets({"mine": {"path": str(SAMPLE)}}, tmp_path)["mine"]
    assert (counted.document_count(), counted.query_count()) == (600, 50)
    cache = json.loads((tmp_path / "counts.json").read_text())
    assert sorted(cache.values()) == [50, 600]
    key = next(key for key, value in cache.items() if value == 600)
    cache[key] = 599  # a cached count is used as is: the file is not recounted
    (tmp_path / "counts.json").write_text(json.dumps(cache))
    plan._count_lines.cache_clear()
    assert plan_datasets({"mine": {"path": str(SAMPLE)}}, tmp_path)["mine"].document_count() == 599


def test_merged_cqadupstack_is_one_dataset_with_the_forums_counts(tmp_path: Path) -> None:
    merged = plan_datasets({"cqadupstack-merged": {"beir": "cqadupstack", "merge_forums": True}}, tmp_path)["cqadupstack-merged"]
    forums = plan_datasets({"cqadupstack": None}, tmp_path)
    assert merged.document_count() == sum(plan.document_count() for plan in forums.values())
    assert merged.query_count() == sum(plan.query_count() for plan in forums.values())
    assert merged.beir_name == "cqadupstack" and merged.folder == tmp_path / "merged" / "cqadupstack-merged"
    with pytest.raises(ConfigError, match="merge_forums: only CQADupStack"):
        plan_datasets({"x": {"beir": "scifact", "merge_forums": True}}, tmp_path)


def test_systems_limited_to_datasets_and_their_inputs(tmp_path: Path) -> None:
    from beirflow.workflow.family import families
    from beirflow.workflow.systems import system_datasets

    datasets = plan_datasets({"scifact": None, "nfcorpus": None, "cqadupstack": None}, tmp_path)
    sections = {
        "bm25": {"bm25": {}},
        "rerank": {
            "big": {"first_stage": "bm25", "datasets": ["scifact", "cqadupstack"]},
            "bigger": {"first_stage": "big", "datasets": ["scifact"]},
        },
    }
    chosen = system_datasets(families(), sections, datasets)
    assert chosen["bm25"] == list(datasets) and chosen["big"] == [
        "scifact",
        *[d for d in datasets if d.startswith("cqadupstack-")],
    ]
    assert chosen["bigger"] == ["scifact"]
    sections["rerank"]["bigger"]["datasets"] = ["nfcorpus"]
    with pytest.raises(ConfigError, match=r"rerank\.bigger\.datasets: 'big' \(first_stage\) does not run on nfcorpus"):
        system_datasets(families(), sections, datasets)
    sections["rerank"]["bigger"]["datasets"] = ["trec-covid"]
    with pytest.raises(ConfigError, match=r"rerank\.bigger\.datasets: 'trec-covid' is not a configured dataset"):
        system_datasets(families(), sections, datasets)


@pytest.mark.parametrize(("family", "settings"), [("rerank", "RerankSettings"), ("dense", "DenseSettings")])
def test_each_familys_settings_know_exactly_the_schemas_result_keys_with_the_same_defaults(family: str, settings: str) -> None:
    """One definition of each key: the schema documents it, the settings class decodes it, strictly."""
    import dataclasses

    import yaml

    from beirflow.dense.search import DenseSettings
    from beirflow.rerank.scoring import RerankSettings
    from beirflow.workflow.family import families
    from beirflow.workflow.settings import OPERATIONAL_KEYS, SettingsError

    cls = {"RerankSettings": RerankSettings, "DenseSettings": DenseSettings}[settings]
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    entry = schema["properties"][family]["additionalProperties"]["properties"]
    fields = {field.name: field for field in dataclasses.fields(cls)}
    assert set(entry) - set(OPERATIONAL_KEYS) - set(families()[family].operational_keys) == set(fields)
    for name, spec in entry.items():
        if name in fields and "default" in spec and fields[name].default is not dataclasses.MISSING:
            assert spec["default"] == fields[name].default, name
    with pytest.raises(SettingsError, match=rf"^config key {family}\.x\.trunction: not a key of {settings} \(known: "):
        cls.from_config(
            {"model": "m", "trunction": "template", **({"kind": "monot5", "first_stage": "b"} if family == "rerank" else {})},
            f"{family}.x",
        )


def test_the_slurm_profile_sends_the_rules_the_family_records_mark_array_as_job_arrays() -> None:
    from beirflow.workflow.family import families

    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "profile.v9+.yaml").read_text(encoding="utf-8"))
    listed = {rule.strip() for rule in profile["slurm-array-jobs"].split(",")}
    marked = {rule.name for family in families().values() for rule in family.rules if rule.array}
    assert marked and listed == marked


def test_the_cost_tables_plan_is_the_plan_and_moves_only_with_the_jobs_that_write_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy

    from beirflow.workflow.plan import build
    from conftest import sample_config

    monkeypatch.chdir(tmp_path)
    config = sample_config()
    plan = build(config)
    assert build(plan.jobs_config()).recorded_jobs() == plan.recorded_jobs()
    unchanged = []
    for change in (
        lambda c: c["bm25"].update({"bm25-k12": {"k1": 1.2}}),
        lambda c: c["bm25"]["bm25-flat"].update(k1=1.5),
        lambda c: c["rerank"]["minilm-rerank"].update(batch_size=8, resources={"mem_mb": 9000}),
        lambda c: c["fusion"]["bm25+minilm"].update(method="combsum"),
    ):
        changed = copy.deepcopy(config)
        change(changed)
        unchanged.append(build(changed).jobs_config() == plan.jobs_config())
    assert unchanged == [True, True, True, True]
    renamed = copy.deepcopy(config)
    renamed["rerank"]["minilm-rerank"]["datasets"] = ["scifact-sample"]
    renamed["dense"]["minilm"]["max_length"] = 128  # another encoder: other embeddings, other records
    assert build(renamed).jobs_config() != plan.jobs_config()


def test_the_family_records_name_the_files_the_rules_write(done) -> None:
    """The cost table reads each job's record and benchmark where the family's record says; on a finished
    run of the embedded default, every one of them is where the rules wrote it, and nothing else is."""
    from beirflow.workflow.plan import build

    plan = build(done.config)
    recorded = {(job.record, job.benchmark) for job in plan.recorded_jobs()}
    for record, benchmark in recorded:
        assert done.path(record).is_file() and done.path(benchmark).is_file(), (record, benchmark)
    written = {str(path.relative_to(done.root)) for path in done.root.glob("benchmarks/**/*.tsv")}
    assert written == {benchmark for _, benchmark in recorded}
