"""``ragstack adapt``: pairs come from the documents alone (titles, headings, sentences), hard
negatives from other documents, the gate from documents kept out of training; a real run of
the packaged MiniLM (a few steps on ~30 short documents) writes a loadable model with its
``training.json``; a refused gate leaves the collection as it was, a passed one (or
``--force``) moves it by the live re-embed, and the adopted pin survives a restart."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ragstack.adaptation import (
    AdaptConfig,
    Gate,
    Passage,
    adapted_model_dir,
    auto_kinds,
    batches,
    gate_kind,
    independent_of,
    make_pairs,
    mine,
    split_documents,
)
from ragstack.app import build, make_embedder
from ragstack.config import Settings
from ragstack.errors import ConfigError, InputError
from ragstack.service import IngestRequest, Ragstack, SourceSpec
from tests.ragstack.conftest import Factory

TOPICS = [
    ("Vacation policy", "vacation days leave holidays carry over approval manager"),
    ("Laptop security", "laptop encryption disk password lock screen stolen device"),
    ("Expense reports", "expense receipts reimbursement travel meals approval finance"),
    ("Remote work", "remote home office hours video calls equipment stipend"),
    ("Parental leave", "parental leave birth adoption weeks paid return"),
    ("Password rules", "password length rotation manager reuse phishing"),
    ("Travel booking", "travel flights hotels booking agency class budget"),
    ("Onboarding", "onboarding first week mentor accounts badge training"),
    ("Code review", "code review pull request reviewers tests merge style"),
    ("Incident response", "incident outage pager severity postmortem timeline"),
]


def write_corpus(folder: Path, docs: int = 30) -> Path:
    """``docs`` titled Markdown documents of five sentences each, three per topic."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    for i in range(docs):
        title, words = TOPICS[i % len(TOPICS)]
        vocab = words.split()
        sentences = [
            f"The {title.lower()} rule {i}.{s} covers "
            + " and ".join(rng.sample(vocab, 3))
            + f" for team {rng.randint(1, 99)}."
            for s in range(5)
        ]
        (folder / f"doc{i:02d}.md").write_text(f"# {title} {i}\n\n" + " ".join(sentences) + "\n")
    return folder


def passages(n: int = 12) -> list[Passage]:
    out = []
    for i in range(n):
        title = f"Title {i}"
        section = title if i % 2 else f"{title} > Heading {i}"
        text = f"First sentence of {i} here. Second one about {i} now. Third about topic {i}."
        out.append(Passage(i, i // 2 if i < 6 else i, title, section, text))
    return out


# -- pairs, negatives, splits (no model) -------------------------------------------------------


def test_pairs_come_from_titles_headings_and_sentences() -> None:
    ps = passages()
    rng = random.Random(1)
    title = make_pairs(ps, range(len(ps)), ["title"], rng)
    assert [p.query for p in title] == [f"Title {i}" for i in range(12)]
    assert all(p.positive == ps[p.passage].text for p in title)  # the body, no heading
    heading = make_pairs(ps, range(len(ps)), ["heading"], rng)
    assert [p.query for p in heading] == [f"Heading {i}" for i in range(0, 12, 2)]
    ict = make_pairs(ps, range(len(ps)), ["ict"], rng)
    for p in ict:
        source = ps[p.passage]
        assert p.query in source.text and p.query not in p.positive
        assert p.positive.startswith(source.section + "\n")
    first = make_pairs(ps, range(len(ps)), ["first"], rng)
    assert all(p.query.startswith("First sentence") for p in first)
    assert auto_kinds(ps) == ("title", "heading")
    untitled = [Passage(i, i, "", "", p.text) for i, p in enumerate(ps)]
    assert auto_kinds(untitled) == ("ict",)
    # the gate reads a pair kind training did not
    assert gate_kind(("title", "heading"), ps) == "ict"
    assert gate_kind(("ict",), ps) == "title"
    assert gate_kind(("ict",), untitled) == "ict"
    # ... and a check of the training task itself (sentences of unseen documents) adopts nothing
    assert independent_of("ict", ("title", "heading")) and independent_of("title", ("ict",))
    assert not independent_of("ict", ("ict",)) and not independent_of("first", ("ict",))
    gate = Gate("ict", 10, 100, 0.4, 0.5, 0.005, independent=False)
    assert gate.delta > gate.margin and not gate.passed
    with pytest.raises(InputError, match="unknown pair kinds"):
        AdaptConfig(pairs=("query",))


def test_negatives_are_other_documents_and_the_held_out_are_unseen() -> None:
    ps = passages(40)
    train_idx, held = split_documents(ps, 0.2, 3)
    held_docs = {ps[i].document_id for i in held}
    assert held_docs and not held_docs & {ps[i].document_id for i in train_idx}
    assert sorted(train_idx + held) == list(range(40))
    rng = random.Random(2)
    pairs = make_pairs(ps, train_idx, ["title", "ict"], rng)
    triples = mine(ps, train_idx, pairs, 10, rng)
    assert len(triples) == len(pairs)
    by_text = {p.text: p for p in ps} | {p.indexed: p for p in ps}
    for pair, t in zip(pairs, triples, strict=True):
        negative = by_text[t.negative]
        assert negative.document_id != ps[pair.passage].document_id
        assert negative.document_id not in held_docs  # held-out text is never trained on
    for batch in batches(triples, 8):
        assert len({t.query for t in batch}) == len(batch)


def test_adapted_models_are_found_only_under_the_data_dir(tmp_path: Path) -> None:
    model = tmp_path / "models" / "adapted" / "kb-1"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    assert adapted_model_dir(tmp_path, "kb-1") == model
    for bad in ("../kb-1", "kb-1/..", "..", "/etc", "kb 1", ""):
        assert adapted_model_dir(tmp_path, bad) is None
    assert adapted_model_dir(tmp_path, "kb-2") is None


def test_training_reads_only_documents_everyone_may_read(
    make_service: Factory, tmp_path: Path
) -> None:
    svc = make_service()
    corpus = write_corpus(tmp_path / "pub", 4)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "s.md").write_text("# Merger plans\n\nThe merger with Initech closes in May.\n")
    svc.ingest(IngestRequest("kb", [SourceSpec(str(corpus))], public=True), principal="user:a")
    svc.ingest(
        IngestRequest("kb", [SourceSpec(str(secret))], allow=["user:alice"]), principal="user:a"
    )
    info = svc.collection("kb")
    public = svc.store.training_chunks(info.id)
    every = svc.store.training_chunks(info.id, public_only=False)
    assert len({r[1] for r in public}) == 4 and len({r[1] for r in every}) == 5
    assert not any("Initech" in r[4] for r in public)
    assert public[0][2] == "Vacation policy 0" and public[0][3] == "Vacation policy 0"
    with pytest.raises(InputError, match="hashing embedder"):
        svc.adapt("kb")


def test_without_torch_adapt_names_the_extra(
    make_service: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    svc = make_service(embedder="int8")
    corpus = write_corpus(tmp_path / "pub", 3)
    svc.ingest(IngestRequest("kb", [SourceSpec(str(corpus))], public=True), principal="user:a")
    for module in ("sentence_transformers", "torch"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'ragstack\[torch\]'"):
        svc.adapt("kb")
    assert not (svc.settings.data_dir / "models" / "adapted").exists()


# -- a real run ------------------------------------------------------------------------------

TINY = {
    "max_pairs": 16,
    "batch_size": 8,
    "max_length": 64,
    "query_length": 32,
    "gate_queries": 6,
    "gate_pool": 24,
    "holdout": 0.2,
    "lr": 5e-5,
}


@pytest.fixture
def kb(make_service: Factory, tmp_path: Path) -> Ragstack:
    svc = make_service(embedder="int8", chunk_max_tokens=128, reembed_grace_s=0.0)
    corpus = write_corpus(tmp_path / "corpus")
    svc.ingest(IngestRequest("kb", [SourceSpec(str(corpus))], public=True), principal="user:a")
    return svc


@pytest.mark.slow
def test_a_refused_gate_keeps_the_collection_and_a_passed_one_adopts_live(
    kb: Ragstack, tmp_path: Path
) -> None:
    svc = kb
    before = svc.collection("kb")
    hits_before = svc.search("kb", "laptop encryption", principals=["user:a"], mode="dense").hits
    stages: list[str] = []
    refused = svc.adapt(
        "kb",
        AdaptConfig(**TINY, margin=1.0),  # type: ignore[arg-type]
        adopt=True,
        progress=lambda stage, _d, _t: stages.append(stage),
    )
    assert {"pairs", "gate", "train", "save"} <= set(stages)
    assert not refused.adopted and not refused.gate_passed and refused.run is None
    assert "kept" in refused.reason
    after = svc.collection("kb")
    assert (after.embedder_id, after.dense_name, after.generation) == (
        before.embedder_id, before.dense_name, before.generation,
    )  # fmt: skip
    hits = svc.search("kb", "laptop encryption", principals=["user:a"], mode="dense").hits
    assert [(h.chunk_id, h.score) for h in hits] == [(h.chunk_id, h.score) for h in hits_before]

    # the model and its record
    out = refused.model_dir
    assert out.parent == svc.settings.data_dir / "models" / "adapted"
    assert refused.model_id == f"local:{out.name}+int8"
    record = json.loads((out / "training.json").read_text())
    assert record["base_model"] == "sentence-transformers/all-MiniLM-L6-v2+int8"
    assert len(record["sha256"]["base/model.safetensors"]) == 64
    assert len(record["sha256"]["passages"]) == 64
    assert record["config"]["pairs"] == ["title"] and record["config"]["max_pairs"] == 16
    assert record["data"]["documents"] == 30 and record["data"]["pairs"]["title"] == 16
    assert record["data"]["held_out_passages"] == 6
    assert record["gate"]["kind"] == "ict" and record["gate"]["queries"] == 6
    assert record["adoption"] == {"adopted": False, "reason": refused.reason,
                                  "model_id": refused.model_id, "reembed_run": None}  # fmt: skip
    assert record["seconds"]["train_seconds"] > 0
    # it loads as an embedder, by the id a collection would pin (found under the data dir)
    embedder, _counter, window = make_embedder(svc.settings, refused.model_id)
    vectors = embedder.embed(["laptop encryption", "vacation days"])
    assert vectors.shape == (2, 384) and window == 256
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    base, _c, _w = make_embedder(svc.settings, before.embedder_id)
    assert not np.allclose(vectors, base.embed(["laptop encryption", "vacation days"]), atol=1e-3)

    # a gate that passes adopts it through the live re-embed
    passed = svc.adapt("kb", AdaptConfig(**TINY, margin=-1.0), adopt=True)  # type: ignore[arg-type]
    assert passed.adopted and passed.run is not None and passed.run.status == "completed"
    now = svc.collection("kb")
    assert now.embedder_id == passed.model_id and now.dense_name == f"dense-{passed.run.id}"
    assert passed.run.from_model == before.embedder_id
    assert json.loads((passed.model_dir / "training.json").read_text())["adoption"]["adopted"]
    # a restarted service finds the adopted model under its data dir (no setting names it)
    svc.store.close()
    again = build(Settings(data_dir=svc.settings.data_dir, embedder="int8"))
    hits = again.search("kb", "laptop encryption", principals=["user:a"], mode="dense").hits
    assert hits and "Laptop security" in hits[0].section
    again.store.close()


@pytest.mark.slow
def test_cli_adapt_json_force_and_help(kb: Ragstack, tmp_path: Path) -> None:
    data = kb.settings.data_dir
    pinned = kb.collection("kb").embedder_id
    kb.store.close()
    runner = CliRunner()
    env = {"RAGSTACK_DATA_DIR": str(data), "RAGSTACK_EMBEDDER": "int8",
           "RAGSTACK_ADAPT_MAX_PAIRS": "32", "RAGSTACK_ADAPT_MARGIN": "1.0"}  # fmt: skip
    small = ["--max-pairs", "16", "--batch-size", "8", "--threads", "2"]
    from ragstack.cli import app

    shown = runner.invoke(app, ["adapt", "--help"], env=env)
    assert shown.exit_code == 0 and "--force" in shown.stdout and "--pairs" in shown.stdout
    bad = runner.invoke(app, ["adapt", "-c", "kb", "--pairs", "query", "--json"], env=env)
    assert bad.exit_code != 0 and "unknown pair kinds" in bad.output
    assert Settings().adapt_adopt is False  # adoption is off unless asked (or forced)
    # --force adopts whatever the gate says (margin 1.0 cannot pass)
    forced = runner.invoke(app, ["adapt", "-c", "kb", "--json", "--force", *small], env=env)
    assert forced.exit_code == 0, forced.output
    result = json.loads(forced.stdout)
    assert result["adopted"] is True and result["gate"]["passed"] is False
    assert set(result["gate"]) == {"kind", "before", "after", "delta", "passed", "independent"}
    assert result["reembed"]["status"] == "completed"
    svc = build(Settings(data_dir=data, embedder="int8"))
    assert svc.collection("kb").embedder_id == result["model_id"] != pinned
    svc.store.close()
