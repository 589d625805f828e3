"""``ragstack demo``: the main job on embedded defaults, over the handbook the repository ships.

Today it splits the sample documents at their headings, builds the BM25 and HNSW indexes
with the packaged MiniLM embedder, and answers a few searches in each mode; as ingest, ask
and serve land, this grows into that end-to-end path.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexes import Bm25Index, HnswIndex
from ragstack.embedding import Embedder

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "handbook"
DEMO_QUERIES = (
    "how many vacation days can I carry over",
    "what happens if I lose my laptop",
    "who gets paged when the site is down",
    "reimbursement for dinner on a business trip",
)


@dataclass(frozen=True)
class Passage:
    doc: str
    section: str
    text: str


@dataclass(frozen=True)
class DemoHit:
    mode: str
    rank: int
    score: float
    passage: Passage


def load_passages(folder: Path = SAMPLE_DIR) -> list[Passage]:
    """One passage per ``##`` section (the document title kept as context)."""
    passages = []
    for path in sorted(folder.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title = text.splitlines()[0].lstrip("# ").strip()
        parts = re.split(r"^## +(.+)$", text, flags=re.MULTILINE)
        if len(parts) == 1:
            body = "\n".join(text.splitlines()[1:]).strip()
            passages.append(Passage(path.name, title, body))
            continue
        for heading, body in zip(parts[1::2], parts[2::2], strict=True):
            passages.append(Passage(path.name, f"{title} > {heading.strip()}", body.strip()))
    return passages


def rrf(rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked id lists."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def run_demo(
    embedder: Embedder, queries: tuple[str, ...] = DEMO_QUERIES, top_k: int = 3
) -> tuple[list[Passage], dict[str, list[DemoHit]], dict[str, float]]:
    passages = load_passages()
    ids = np.arange(len(passages), dtype=np.int64)
    texts = [f"{p.section}\n{p.text}" for p in passages]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    vectors = embedder.embed(texts)
    timings["embed_s"] = time.perf_counter() - t0
    lexical = Bm25Index()
    lexical.add(ids, texts)
    dense = HnswIndex(embedder.dim)
    dense.add(ids, vectors)
    results: dict[str, list[DemoHit]] = {}
    qvecs = embedder.embed(list(queries))
    for qi, query in enumerate(queries):
        bm = lexical.search(query, 10)
        dn = dense.search(qvecs[qi : qi + 1], 10)
        fused = rrf([bm.ids.tolist(), [i for i in dn.ids[0].tolist() if i >= 0]])
        hits = [
            DemoHit("bm25", r + 1, float(s), passages[int(i)])
            for r, (i, s) in enumerate(zip(bm.ids[:top_k], bm.scores[:top_k], strict=True))
        ]
        hits += [
            DemoHit("dense", r + 1, float(s), passages[int(i)])
            for r, (i, s) in enumerate(dn.hits(0)[:top_k])
        ]
        hits += [DemoHit("hybrid", r + 1, s, passages[i]) for r, (i, s) in enumerate(fused[:top_k])]
        results[query] = hits
    return passages, results, timings
