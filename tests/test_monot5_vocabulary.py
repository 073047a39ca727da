"""monoT5 on T5's real SentencePiece vocabulary (../shared/models/t5-vocab), in a folder that ships
spiece.model alone as castorini's uploads do: the real ids of ▁true and ▁false, pygaggle's cut of
long templates, and through the workflow the scores of pygaggle's MonoT5.rescore (tests/pygaggle_monot5.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from beirflow.data.beir import document_text, iter_corpus, read_prepared_queries
from beirflow.models.loading import resolve_model
from beirflow.rerank.scoring import MonoT5Scorer, RerankSettings
from beirflow.runs.trec import read_run
from beirflow.workflow import paths
from conftest import SAMPLE, Workflow
from model_builders import T5_VOCAB, build_tiny_monot5_on_t5_vocabulary
from pygaggle_monot5 import PygaggleMonoT5

pytestmark = pytest.mark.skipif(
    not T5_VOCAB.is_file(), reason="../shared/models/t5-vocab/spiece.model is not beside the checkout"
)


@pytest.fixture(scope="module")
def monot5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_monot5_on_t5_vocabulary(tmp_path_factory.mktemp("t5-vocab") / "monot5")


def _scorer(folder: Path, truncation: str) -> MonoT5Scorer:
    settings = RerankSettings(kind="monot5", model=str(folder), first_stage="bm25-flat", precision="fp32", truncation=truncation)
    return MonoT5Scorer(resolve_model(str(folder), None, "rerank.t.model"), settings, "rerank.t.model", "cpu")


def _documents() -> dict[str, str]:
    return {document.doc_id: document_text(document) for _, document in iter_corpus(SAMPLE / "corpus.jsonl")}


def test_the_folder_ships_spiece_model_alone_and_true_false_are_t5s_ids(monot5: Path) -> None:
    assert not (monot5 / "tokenizer.json").exists() and (monot5 / "spiece.model").is_file()
    scorer = _scorer(monot5, "template")
    assert (scorer.true_id, scorer.false_id) == (1176, 6136)
    assert (scorer.eos_id, scorer.pad_id) == (1, 0)


def test_template_truncation_cuts_at_511_tokens_plus_eos_as_pygaggle_did(monot5: Path) -> None:
    scorer, reference = _scorer(monot5, "template"), PygaggleMonoT5(monot5)
    query = "Vitamin D deficiency is unrelated to birth weight."
    pairs = [(query, text) for text in _documents().values()]
    ours = scorer.tokenize(pairs)
    theirs = [reference.encode(*pair) for pair in pairs]
    assert [feature.input_ids for feature in ours] == theirs  # every one of the 600 documents
    long = [ids for ids in theirs if len(ids) == 512]
    assert len(long) > 50 and all(ids[-1] == 1 for ids in long)  # cut at 511 tokens, then eos: no 'Relevant:'
    assert all(ids[-4:-1] == reference.sp.encode("Relevant:") for ids in theirs if len(ids) < 512)


@pytest.mark.workflow
def test_through_the_workflow_scores_equal_pygaggles_rescore_on_short_and_long_documents(monot5: Path, tmp_path: Path) -> None:
    from conftest import sample_config

    config = sample_config(
        bm25={"bm25-flat": {"fields": "flat"}},
        rerank={
            "monot5-t5-vocab": {
                "kind": "monot5",
                "model": str(monot5),
                "first_stage": "bm25-flat",
                "depth": 20,
                "truncation": "template",
                "precision": "fp32",
                "resources": {"gpus": 0},
            }
        },
        dense={},
        fusion={},
    )
    workflow = Workflow(tmp_path / "work", config)
    workflow.run(paths.run("rerank", "scifact-sample", "monot5-t5-vocab"))
    run = read_run(workflow.path(paths.run("rerank", "scifact-sample", "monot5-t5-vocab")))
    queries = read_prepared_queries(workflow.path(paths.queries("scifact-sample")))
    documents = _documents()
    reference = PygaggleMonoT5(monot5)
    worst, long_pairs = 0.0, 0
    for query_id, hits in run.items():
        doc_ids = list(hits)
        expected = reference.rescore(queries[query_id], [documents[doc_id] for doc_id in doc_ids])
        worst = max(worst, *(abs(hits[doc_id] - score) for doc_id, score in zip(doc_ids, expected, strict=False)))
        long_pairs += sum(len(reference.encode(queries[query_id], documents[doc_id])) == 512 for doc_id in doc_ids)
    assert sum(len(hits) for hits in run.values()) == 50 * 20
    assert long_pairs > 50, long_pairs  # templates cut at 511 tokens are among the compared
    assert worst <= 1e-5, worst
