"""Dataset embeddings computed once with the packaged MiniLM model and cached on disk.

The cache key is the model id plus a hash of the texts. SciFact ships precomputed
vectors of the same model in ``minilm-l6-v2/``: when present they seed the cache after a
spot check re-embeds a sample and finds them equal (cosine >= 0.999).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from evals.beir import REPO_ROOT, BeirDataset
from ragstack.embedding import Embedder, FloatMatrix

CACHE_DIR = REPO_ROOT / ".cache" / "embeddings"


def _key(model_id: str, texts: Sequence[str]) -> str:
    h = hashlib.sha256(model_id.encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:24]


def cached_embed(
    embedder: Embedder, texts: Sequence[str], *, seed: FloatMatrix | None = None
) -> FloatMatrix:
    """Embed ``texts`` (or reuse the on-disk cache); ``seed`` is a candidate precomputed matrix."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"{_key(embedder.model_id, texts)}.npy"
    if path.is_file():
        cached: FloatMatrix = np.load(path, allow_pickle=False)
        return cached
    vectors: FloatMatrix | None = None
    if seed is not None and seed.shape == (len(texts), embedder.dim):
        rng = np.random.default_rng(0)
        sample = rng.choice(len(texts), size=min(16, len(texts)), replace=False)
        fresh = embedder.embed([texts[i] for i in sample])
        if float((fresh * seed[sample]).sum(axis=1).min()) >= 0.999:
            vectors = np.ascontiguousarray(seed, dtype=np.float32)
    if vectors is None:
        vectors = embedder.embed(texts)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        np.save(fh, vectors, allow_pickle=False)
    tmp.replace(path)
    return vectors


def dataset_embeddings(
    embedder: Embedder, ds: BeirDataset, query_ids: Sequence[str]
) -> tuple[FloatMatrix, FloatMatrix]:
    """Corpus vectors (``title + " " + text``, corpus order) and vectors of ``query_ids``."""
    docs = [d.full_text for d in ds.corpus]
    queries = [ds.queries[q] for q in query_ids]
    seed_docs = seed_queries = None
    pre = ds.path / "minilm-l6-v2"
    if embedder.model_id.endswith("all-MiniLM-L6-v2") and (pre / "ids.json").is_file():
        ids = json.loads((pre / "ids.json").read_text())
        if ids.get("corpus_ids") == [d.doc_id for d in ds.corpus]:
            seed_docs = np.load(pre / "corpus.npy", allow_pickle=False)
        qids: list[str] = ids.get("query_ids", [])
        if set(query_ids) <= set(qids):
            pos = {q: i for i, q in enumerate(qids)}
            allq = np.load(pre / "queries.npy", allow_pickle=False)
            seed_queries = allq[[pos[q] for q in query_ids]]
    return (
        cached_embed(embedder, docs, seed=seed_docs),
        cached_embed(embedder, queries, seed=seed_queries),
    )
