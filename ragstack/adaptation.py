"""Label-free adaptation of a collection's embedder (``ragstack adapt``): fine-tune its
MiniLM on pairs its own documents carry, with no judged queries, and check the result on a
signal it was not trained on before anyone adopts it.

* Pairs (``PAIR_KINDS``): ``title`` (a document's title -> a passage's body), ``heading`` (a
  section heading -> the section's passage, where it is not the title), ``ict`` (the inverse
  cloze task: one sentence -> the rest of its passage, for collections without titles such as
  PubMedQA's abstracts), ``first`` (a passage's first sentence -> the rest). ``auto`` takes
  ``title`` and ``heading`` when at least half the passages have one, else ``ict``.
* Hard negatives: per pair, a passage of another document that BM25 (``indexes.Bm25Index``
  over the training passages) ranks high for the pair's query.
* Loss: multiple-negatives ranking (each query against every positive and hard negative in
  its batch), the loss ``evals.train_embedder`` trains with (its loop lives here, shared).
* The gate: a share of the documents (``holdout``) is kept out of training; queries of
  another pair kind (``ict`` when training read titles or headings, else ``title`` when the
  documents have titles, else ``ict`` of unseen documents) are searched, before and after,
  over the held-out targets plus their BM25 neighbours and random passages, embedded by the
  int8 ONNX graph of the weights (what a default collection serves); its figure is MRR@10.
  The adapted model is adopted only if that figure rises by a margin.
* Output: a sentence-transformers directory with ``training.json`` (settings, hashes of the
  training passages and of the base weights, pair counts, the gate's figures, timings), under
  ``<data dir>/models/adapted/<name>``: a collection pinned to ``local:<name>`` finds it there.

torch and sentence-transformers (the ``torch`` extra) are imported only when training runs.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragstack.compression import split_sentences
from ragstack.errors import InputError

PAIR_KINDS = ("title", "heading", "ict", "first")
ADAPTED_DIR = Path("models") / "adapted"  # under the data dir
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# (stage, done, total): stages "pairs", "gate", "train", "save"
Progress = Callable[[str, int, int], None]


def adapted_model_dir(data_dir: Path, name: str) -> Path | None:
    """The adapted model ``name`` (a collection pins it as ``local:<name>``) if it exists
    under ``data_dir``; a name that could leave that folder is never looked up."""
    if not _NAME.fullmatch(name) or ".." in name:
        return None
    path = data_dir / ADAPTED_DIR / name
    return path if (path / "config.json").is_file() else None


@dataclass(frozen=True)
class AdaptConfig:
    pairs: tuple[str, ...] = ()  # PAIR_KINDS to train on; empty: auto
    max_pairs: int = 1000  # a sample of this many pairs (one epoch: ~32 steps)
    batch_size: int = 32  # pairs per step; each query sees 2 * batch_size - 1 negatives
    # tokens of a training passage: half the default chunk bound, for time (a step's cost
    # grows with it; the model still embeds 256 after training)
    max_length: int = 128
    query_length: int = 64  # tokens of a pseudo-query (titles, headings, sentences)
    epochs: int = 1
    lr: float = 2e-5
    warmup: float = 0.1
    scale: float = 20.0  # cosine -> logit, as sentence-transformers' MNRL
    mine_depth: int = 20  # a hard negative is drawn from BM25's top mine_depth
    holdout: float = 0.1  # share of documents kept out of training for the gate
    gate_queries: int = 200
    gate_pool: int = 1500  # passages a gate query is searched among (targets, neighbours, random)
    margin: float = 0.005  # gate MRR@10 rise needed to adopt
    seed: int = 13
    threads: int = 2

    def __post_init__(self) -> None:
        unknown = [k for k in self.pairs if k not in PAIR_KINDS]
        if unknown:
            raise InputError(f"unknown pair kinds {unknown}: choose from {', '.join(PAIR_KINDS)}")
        if self.batch_size < 2 or self.epochs < 1 or self.max_pairs < self.batch_size:
            raise InputError("batch size must be >= 2, epochs >= 1 and max pairs >= batch size")
        if not 0.0 < self.holdout < 0.5:
            raise InputError("holdout must be in (0, 0.5)")


@dataclass(frozen=True)
class Passage:
    """A chunk as training reads it (already redacted, like everything stored)."""

    chunk_id: int
    document_id: int
    title: str
    section: str
    text: str

    @property
    def indexed(self) -> str:
        """What the collection embeds for it (section context, then text)."""
        return f"{self.section}\n{self.text}" if self.section else self.text


@dataclass(frozen=True)
class Pair:
    kind: str
    query: str
    positive: str
    passage: int  # index into the passages


@dataclass(frozen=True)
class Triple:
    query: str
    positive: str
    negative: str


@dataclass(frozen=True)
class Gate:
    kind: str
    queries: int
    pool: int
    before: float  # MRR@10 of the base model
    after: float  # of the adapted model
    margin: float
    # a pair kind training did not read: on PubMedQA (no titles, so trained on sentences and
    # checked on sentences of held-out documents) the gate rose +0.063 while labelled dense
    # nDCG@10 fell -0.015, so a check of the training task itself never adopts a model
    independent: bool = True

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def passed(self) -> bool:
        return self.independent and self.delta >= self.margin


@dataclass
class Adapted:
    path: Path
    record: dict[str, Any]
    gate: Gate
    pairs: dict[str, int] = field(default_factory=dict)
    train_s: float = 0.0


# -- pairs ------------------------------------------------------------------------------------


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def _heading(p: Passage) -> str:
    """The passage's innermost heading, unless it is only the document's title."""
    last = p.section.rsplit(" > ", 1)[-1].strip()
    return "" if not last or last == p.title.strip() else last


def _title(p: Passage) -> str:
    return p.title.strip() or (p.section.split(" > ", 1)[0].strip() if p.section else "")


def auto_kinds(passages: Sequence[Passage]) -> tuple[str, ...]:
    """``title`` (and ``heading``) when half the passages have one, else ``ict``."""
    titled = sum(1 for p in passages if _title(p))
    headed = sum(1 for p in passages if _heading(p))
    if titled + headed < len(passages) / 2:
        return ("ict",)
    return ("title", "heading") if headed >= len(passages) / 10 else ("title",)


def pairs_of(kind: str, p: Passage, index: int, rng: random.Random) -> Pair | None:
    """One pair of ``kind`` from passage ``p``, or ``None`` if it carries none."""
    if kind == "title":
        title = _title(p)
        return Pair(kind, title, p.text, index) if title and len(p.text) > 2 * len(title) else None
    if kind == "heading":
        heading = _heading(p)
        return Pair(kind, heading, p.text, index) if heading else None
    sentences = _sentences(p.text)
    usable = [i for i, s in enumerate(sentences) if 4 <= len(s.split()) <= 60]
    if len(sentences) < 3 or not usable:
        return None
    pick = usable[0] if kind == "first" else rng.choice(usable)
    if kind == "first" and pick != 0:
        return None
    rest = " ".join(s for i, s in enumerate(sentences) if i != pick)
    context = f"{p.section}\n{rest}" if p.section else rest
    return Pair(kind, sentences[pick], context, index)


def make_pairs(
    passages: Sequence[Passage], indices: Sequence[int], kinds: Sequence[str], rng: random.Random
) -> list[Pair]:
    """Every pair the passages at ``indices`` carry, of each kind (one per passage and kind)."""
    out = []
    for kind in kinds:
        for i in indices:
            pair = pairs_of(kind, passages[i], i, rng)
            if pair is not None:
                out.append(pair)
    return out


def _negative_form(pair: Pair, p: Passage) -> str:
    """A hard negative in the form of the pair's positive (body only for titles and headings:
    a heading prefix must not tell positives from negatives)."""
    return p.text if pair.kind in ("title", "heading") else p.indexed


def mine(
    passages: Sequence[Passage],
    candidates: Sequence[int],
    pairs: Sequence[Pair],
    depth: int,
    rng: random.Random,
    progress: Progress | None = None,
) -> list[Triple]:
    """Each pair with a hard negative: a passage (of ``candidates``) of another document among
    BM25's top ``depth`` for its query (a random one when BM25 finds none)."""
    from indexes import Bm25Index

    bm25 = Bm25Index()
    bm25.add(np.array(candidates, dtype=np.int64), [passages[i].indexed for i in candidates])
    out = []
    for n, pair in enumerate(pairs):
        doc = passages[pair.passage].document_id
        ranked = [int(i) for i in bm25.search(pair.query, depth).ids]
        pool = [i for i in ranked if passages[i].document_id != doc]
        if not pool:
            drawn = rng.sample(list(candidates), min(10, len(candidates)))
            pool = [i for i in drawn if passages[i].document_id != doc]
        if pool:
            negative = _negative_form(pair, passages[rng.choice(pool)])
            out.append(Triple(pair.query, pair.positive, negative))
        if progress is not None and (n % 200 == 0 or n == len(pairs) - 1):
            progress("pairs", n + 1, len(pairs))
    return out


def batches(triples: list[Triple], size: int) -> list[list[Triple]]:
    """Batches without two triples of one query (its other positive would count as negative)."""
    out: list[list[Triple]] = []
    pending = list(triples)
    while pending:
        batch: list[Triple] = []
        seen: set[str] = set()
        rest = []
        for t in pending:
            if len(batch) < size and t.query not in seen:
                batch.append(t)
                seen.add(t.query)
            else:
                rest.append(t)
        out.append(batch)
        pending = rest
    return out


# -- training ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopConfig:
    """What the multiple-negatives loop needs (``AdaptConfig`` and ``evals.train_embedder``'s
    configuration both give it)."""

    lr: float
    warmup: float
    scale: float
    query_length: int = 0  # 0: the model's own max_seq_length for queries too


def train(
    model: Any,
    epochs: list[list[list[Triple]]],
    cfg: LoopConfig,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, float]:
    """Multiple-negatives ranking with a hard negative per query; ``progress(step, steps,
    loss)`` after each step."""
    import torch
    import torch.nn.functional as F  # noqa: N812 - the torch convention

    passage_length = model.max_seq_length
    prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in 5.x

    def encode(texts: list[str], length: int) -> Any:
        model.max_seq_length = length
        features = prepare(texts)
        return F.normalize(model(features)["sentence_embedding"], dim=-1)

    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    total = sum(len(e) for e in epochs)
    warmup = max(1, int(cfg.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: (
            (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
        ),
    )
    model.train()
    step, started = 0, time.perf_counter()
    try:
        for steps in epochs:
            for batch in steps:
                q = encode([t.query for t in batch], cfg.query_length or passage_length)
                d = encode(
                    [t.positive for t in batch] + [t.negative for t in batch], passage_length
                )
                logits = cfg.scale * q @ d.T
                loss: Any = F.cross_entropy(logits, torch.arange(len(batch)))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimiser.step()
                scheduler.step()
                optimiser.zero_grad(set_to_none=True)
                step += 1
                if progress is not None:
                    progress(step, total, float(loss.detach()))
    finally:
        model.max_seq_length = passage_length
        model.eval()
    return {"steps": float(step), "train_seconds": time.perf_counter() - started}


# -- the gate ---------------------------------------------------------------------------------


def gate_kind(trained: Sequence[str], passages: Sequence[Passage]) -> str:
    """A pair kind the model was not trained on: ``ict`` after titles or headings; after
    ``ict``/``first``, ``title`` when half the passages have one, else ``ict`` (of documents
    it never saw: not independent, see ``independent_of``)."""
    if any(k in ("title", "heading") for k in trained):
        return "ict"
    titled = sum(1 for p in passages if _title(p))
    return "title" if titled >= len(passages) / 2 else "ict"


_FAMILIES = {"title": "title", "heading": "heading", "ict": "sentence", "first": "sentence"}


def independent_of(gate: str, trained: Sequence[str]) -> bool:
    """Whether a gate of kind ``gate`` checks something training did not read (``ict`` and
    ``first`` are one family: a sentence -> the rest of its passage)."""
    return _FAMILIES[gate] not in {_FAMILIES[k] for k in trained}


@dataclass(frozen=True)
class GateSet:
    kind: str
    queries: list[str]
    pool: list[str]  # passages searched; the first len(queries) are the targets, in order


def gate_set(
    passages: Sequence[Passage],
    held_out: Sequence[int],
    kind: str,
    cfg: AdaptConfig,
    rng: random.Random,
) -> GateSet:
    """Queries of ``kind`` from held-out passages; the pool is their targets (as the pair
    gives them), each query's BM25 top 10 among the other passages, then random ones."""
    from indexes import Bm25Index

    pairs = make_pairs(passages, held_out, [kind], rng)
    rng.shuffle(pairs)
    seen_docs: set[int] = set()
    chosen = []
    for pair in pairs:  # one query per document
        doc = passages[pair.passage].document_id
        if doc not in seen_docs:
            seen_docs.add(doc)
            chosen.append(pair)
        if len(chosen) == cfg.gate_queries:
            break
    targets = {p.passage for p in chosen}
    others = [i for i in range(len(passages)) if i not in targets]
    bm25 = Bm25Index()
    bm25.add(np.array(others, dtype=np.int64), [passages[i].indexed for i in others])
    extra: dict[int, None] = {}
    for pair in chosen:
        for i in bm25.search(pair.query, 10).ids:
            extra[int(i)] = None
    room = max(0, cfg.gate_pool - len(chosen) - len(extra))
    rest = [i for i in others if i not in extra]
    for i in rng.sample(rest, min(room, len(rest))):
        extra[i] = None
    pool = [p.positive if p.kind in ("ict", "first") else passages[p.passage].indexed
            for p in chosen] + [passages[i].indexed for i in extra]  # fmt: skip
    return GateSet(kind, [p.query for p in chosen], pool)


def gate_embedder(model_dir: Path, threads: int) -> Callable[[list[str]], Any]:
    """What the gate embeds with: the int8 ONNX graph of the weights at ``model_dir`` (what a
    default collection serves, and 3x torch's speed), else sentence-transformers on torch."""
    from ragstack.embedding import BertOnnxEmbedder, SentenceTransformerEmbedder

    if BertOnnxEmbedder.can_build(model_dir):
        return BertOnnxEmbedder(model_dir, quantize=True, threads=threads).embed
    return SentenceTransformerEmbedder(model_dir, threads=threads).embed


def gate_mrr(embed: Callable[[list[str]], Any], gs: GateSet) -> float:
    """MRR@10 of each gate query's target among the pool."""
    if not gs.queries:
        return 0.0
    pool = np.asarray(embed(gs.pool))
    qs = np.asarray(embed(gs.queries))
    scores = qs @ pool.T
    rr = []
    for row in range(len(gs.queries)):
        target = scores[row, row]
        rank = int((scores[row] > target).sum())
        rr.append(1.0 / (rank + 1) if rank < 10 else 0.0)
    return float(np.mean(rr))


# -- the run ----------------------------------------------------------------------------------


def passages_sha256(passages: Sequence[Passage]) -> str:
    """A hash of the training data: every passage's document, title, section and text."""
    digest = hashlib.sha256()
    for p in passages:
        digest.update(json.dumps([p.document_id, p.title, p.section, p.text]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def split_documents(
    passages: Sequence[Passage], holdout: float, seed: int
) -> tuple[list[int], list[int]]:
    """``(train, held out)`` passage indices: a seeded share of documents is held out whole."""
    docs = sorted({p.document_id for p in passages})
    random.Random(seed).shuffle(docs)
    held = set(docs[: max(1, round(holdout * len(docs)))])
    train_idx = [i for i, p in enumerate(passages) if p.document_id not in held]
    held_idx = [i for i, p in enumerate(passages) if p.document_id in held]
    return train_idx, held_idx


def adapt(
    passages: Sequence[Passage],
    base: Path,
    out: Path,
    cfg: AdaptConfig,
    *,
    base_id: str,
    about: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Adapted:
    """Fine-tune the model at ``base`` on ``passages``' pairs and write it to ``out`` with its
    ``training.json``; the gate's figures before and after come back with it."""
    from ragstack.embedding import file_sha256

    started = time.perf_counter()
    progress = progress or (lambda _stage, _done, _total: None)
    if len({p.document_id for p in passages}) < 10:
        raise InputError("adapting an embedder needs a collection of at least 10 documents")
    kinds = cfg.pairs or auto_kinds(passages)
    rng = random.Random(cfg.seed)
    train_idx, held_idx = split_documents(passages, cfg.holdout, cfg.seed)
    pairs = make_pairs(passages, train_idx, kinds, rng)
    rng.shuffle(pairs)
    pairs = pairs[: cfg.max_pairs]
    if len(pairs) < cfg.batch_size:
        raise InputError(
            f"the documents carry {len(pairs)} {'/'.join(kinds)} pairs, fewer than a batch "
            f"({cfg.batch_size}): try other pair kinds"
        )
    triples = mine(passages, train_idx, pairs, cfg.mine_depth, rng, progress)
    gate_pairs = gate_kind(kinds, passages)
    gs = gate_set(passages, held_idx, gate_pairs, cfg, rng)
    mined_s = time.perf_counter() - started

    progress("gate", 0, 2)
    before = gate_mrr(gate_embedder(base, cfg.threads), gs)
    progress("gate", 1, 2)
    model = load_trainable(base, cfg)
    epochs = [batches(list(triples), cfg.batch_size)]
    for _ in range(cfg.epochs - 1):
        shuffled = list(triples)
        rng.shuffle(shuffled)
        epochs.append(batches(shuffled, cfg.batch_size))
    loop = LoopConfig(lr=cfg.lr, warmup=cfg.warmup, scale=cfg.scale, query_length=cfg.query_length)
    losses: list[float] = []

    def stepped(step: int, total: int, loss: float) -> None:
        losses.append(loss)
        progress("train", step, total)

    window = model.max_seq_length
    model.max_seq_length = min(window, cfg.max_length)
    try:
        timing = train(model, epochs, loop, stepped)
    finally:
        model.max_seq_length = window  # saved with the window it serves at
    progress("save", 0, 1)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out), safe_serialization=True)
    progress("save", 1, 1)
    after = gate_mrr(gate_embedder(out, cfg.threads), gs)
    progress("gate", 2, 2)
    gate = Gate(gate_pairs, len(gs.queries), len(gs.pool), before, after, cfg.margin,
                independent_of(gate_pairs, kinds))  # fmt: skip
    counts = {k: sum(1 for p in pairs if p.kind == k) for k in kinds}
    import sentence_transformers
    import torch

    record: dict[str, Any] = {
        "format": 1,
        "kind": "label-free adaptation (ragstack adapt)",
        **(about or {}),
        "config": {**asdict(cfg), "pairs": list(kinds)},
        "base_model": base_id,
        "base_path": str(base),
        "sha256": {
            "base/model.safetensors": file_sha256(base / "model.safetensors"),
            "passages": passages_sha256(passages),
            "model.safetensors": file_sha256(out / "model.safetensors"),
        },
        "data": {
            "passages": len(passages),
            "documents": len({p.document_id for p in passages}),
            "train_passages": len(train_idx),
            "held_out_passages": len(held_idx),
            "pairs": counts,
            "triples": len(triples),
        },
        "gate": {**asdict(gate), "delta": gate.delta, "passed": gate.passed},
        "loss": {
            "first": float(np.mean(losses[:5])) if losses else None,
            "last": float(np.mean(losses[-5:])) if losses else None,
        },
        "versions": {
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        },
        "seconds": {**timing, "pairs": mined_s, "total": time.perf_counter() - started},
    }
    write_record(out, record)
    return Adapted(out, record, gate, counts, timing["train_seconds"])


def load_trainable(base: Path, cfg: AdaptConfig) -> Any:
    """The sentence-transformers model at ``base``, on CPU, offline, seeded (its own window:
    what it embeds with before and after training)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    return SentenceTransformer(str(base), device="cpu", local_files_only=True)


def write_record(out: Path, record: dict[str, Any]) -> dict[str, Any]:
    """``training.json`` beside a trained model: configuration, provenance, timings, figures."""
    (out / "training.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
