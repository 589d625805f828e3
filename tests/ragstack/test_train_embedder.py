"""``evals/train_embedder.py``: batches never pit a claim against its own other abstract, and
a few steps of its loop on real SciFact train pairs move the packaged MiniLM towards them."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from evals.beir import load_beir
from evals.train_embedder import EmbedTrainConfig, make_triples, train
from ragstack.adaptation import Triple, batches
from ragstack.embedding import packaged_minilm_path

pytestmark = pytest.mark.slow


def test_batches_hold_each_claim_once() -> None:
    triples = [Triple(f"q{i % 5}", f"p{i}", f"n{i}") for i in range(23)]
    out = batches(triples, 4)
    assert sorted(t.positive for b in out for t in b) == sorted(t.positive for t in triples)
    for batch in out:
        assert len(batch) <= 4 and len({t.query for t in batch}) == len(batch)


def test_triples_come_from_judged_pairs_and_the_pool(shared_data: Path) -> None:
    ds = load_beir(shared_data / "scifact", "train")
    queries = ds.judged_queries()[:20]
    pos = {d.doc_id: i for i, d in enumerate(ds.corpus)}
    pools = {
        q: [i for i in range(50) if ds.corpus[i].doc_id not in ds.qrels[q]] for q, _ in queries
    }
    cfg = EmbedTrainConfig(mine_skip=3)
    triples = make_triples(ds, queries, pools, cfg, random.Random(1))
    judged = sum(1 for q, _ in queries for d, g in ds.qrels[q].items() if g > 0 and d in pos)
    assert len(triples) == judged
    texts = {q: t for q, t in queries}
    for t in triples:
        qid = next(q for q, text in texts.items() if text == t.query)
        relevant = {ds.corpus[pos[d]].full_text for d in ds.qrels[qid]}
        assert t.positive in relevant and t.negative not in relevant
        assert t.negative in {ds.corpus[i].full_text for i in pools[qid][3:]}


def test_a_few_steps_pull_claims_towards_their_abstracts(shared_data: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    ds = load_beir(shared_data / "scifact", "train")
    rng = random.Random(3)
    pos = {d.doc_id: i for i, d in enumerate(ds.corpus)}
    triples = []
    for qid, text in ds.judged_queries()[:8]:
        doc = next(d for d, g in ds.qrels[qid].items() if g > 0 and d in pos)
        triples.append(Triple(text, ds.corpus[pos[doc]].full_text, rng.choice(ds.corpus).full_text))
    model = SentenceTransformer(str(packaged_minilm_path()), device="cpu", local_files_only=True)
    model.max_seq_length = 64

    def margin() -> float:
        q = model.encode([t.query for t in triples], normalize_embeddings=True)
        p = model.encode([t.positive for t in triples], normalize_embeddings=True)
        n = model.encode([t.negative for t in triples], normalize_embeddings=True)
        return float(np.mean((q * p).sum(axis=1) - (q * n).sum(axis=1)))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        before = margin()
        cfg = EmbedTrainConfig(lr=5e-5, warmup=0.1, threads=1)
        train(model, [batches(triples, 8)] * 6, cfg)
        after = margin()
    finally:
        torch.set_num_threads(threads)
    assert after > before + 0.05, (before, after)
