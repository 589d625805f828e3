"""Synthetic corpora for the scale benchmarks (``bench_indexes``, ``bench_growth``), fixed by seed.

**Texts.** A chunk is ``Poisson(60) + 5`` tokens drawn independently from a bounded Zipf law
over a vocabulary of 50,000 words ``w1x`` ... ``w50000x``: ``P(rank r) = r**-1.15 / H`` for
``r <= 50,000`` (``H`` normalises). The analyzer keeps such words whole (no stopword, nothing
to stem). The most common word is in nearly every chunk, the rarest in a few dozen of a
million: posting lists span the whole range a real corpus has. (Until issue 17 the texts were
numpy's unbounded ``zipf`` clamped at the vocabulary size, which piled ~18% of all tokens onto
the last word: the most common "term" of the corpus was an artefact.)

**Vectors.** Unit 384-d vectors around 1,000 centres: 50 topics drawn from a standard normal,
20 sub-topics per topic at 0.7 sigma around it, each point at 0.9 sigma around a sub-topic,
then normalised. Neighbourhoods are clustered, as real embeddings are, without being trivial.

**Queries.** Two to four terms drawn from the same Zipf law; query vectors from the same mixture.

**Documents and ACLs.** Chunks are grouped into documents of one to four chunks; every
document is readable by ``group:all``, about 10% also by ``group:ten`` and about 1% by
``group:one``; 90% belong to tenant ``acme``, the rest to ``globex``.

**Determinism.** Chunk ``i`` depends only on the seed and its block ``i // BLOCK``, so a
corpus of 10k chunks is the prefix of the 100k one, which is the prefix of the 1M one, and a
block can be generated alone (a million vectors never need to be in memory at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

BLOCK = 10_000
QUERY_BLOCK = 1_000
VOCABULARY = 50_000
EXPONENT = 1.15
DIM = 384
MEAN_TOKENS = 60
GROUPS = {"group:one": 0.01, "group:ten": 0.10}  # besides group:all, on every document
TENANTS = ("acme", "globex")
ACME_SHARE = 0.9


@dataclass(frozen=True)
class SyntheticDoc:
    """One document: its first chunk's position in the corpus, its size and its ACL."""

    first: int
    size: int
    principals: frozenset[str]
    tenant: str


@dataclass(frozen=True)
class Corpus:
    seed: int = 17
    dim: int = DIM
    vocabulary: int = VOCABULARY

    # -- the laws --------------------------------------------------------------------------

    @cached_property
    def words(self) -> list[str]:
        return [f"w{r}x" for r in range(1, self.vocabulary + 1)]

    @cached_property
    def _cdf(self) -> npt.NDArray[np.float64]:
        p = np.arange(1, self.vocabulary + 1, dtype=np.float64) ** -EXPONENT
        cdf: npt.NDArray[np.float64] = np.cumsum(p)
        cdf /= cdf[-1]
        return cdf

    def tokens(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.intp]:
        """``count`` word indexes (0 = the most common word) drawn from the Zipf law."""
        found: npt.NDArray[np.intp] = np.searchsorted(self._cdf, rng.random(count), side="right")
        return np.minimum(found, self.vocabulary - 1)

    @cached_property
    def _centres(self) -> F32:
        rng = np.random.default_rng([self.seed, 0])
        topics = rng.standard_normal((50, self.dim))
        centres = np.repeat(topics, 20, axis=0) + 0.7 * rng.standard_normal((1000, self.dim))
        return centres.astype(np.float32)

    def _points(self, rng: np.random.Generator, count: int) -> F32:
        which = rng.integers(0, self._centres.shape[0], size=count)
        x = self._centres[which] + 0.9 * rng.standard_normal((count, self.dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    # -- chunks ----------------------------------------------------------------------------

    def _span(self, start: int, count: int) -> Iterator[tuple[int, int, int]]:
        """``(block, offset in it, how many)`` covering chunks ``start .. start + count``."""
        pos, end = start, start + count
        while pos < end:
            block, offset = divmod(pos, BLOCK)
            take = min(BLOCK - offset, end - pos)
            yield block, offset, take
            pos += take

    def _block_texts(self, block: int) -> list[str]:
        rng = np.random.default_rng([self.seed, 1, block])
        lengths = rng.poisson(MEAN_TOKENS, size=BLOCK) + 5
        words = self.tokens(rng, int(lengths.sum())).tolist()
        names = self.words
        out, pos = [], 0
        for n in lengths.tolist():
            out.append(" ".join([names[w] for w in words[pos : pos + n]]))
            pos += n
        return out

    def texts(self, start: int, count: int) -> list[str]:
        """The texts of chunks ``start .. start + count``."""
        out: list[str] = []
        for block, offset, take in self._span(start, count):
            out += self._block_texts(block)[offset : offset + take]
        return out

    def vectors(self, start: int, count: int) -> F32:
        """The unit vectors of chunks ``start .. start + count``, float32."""
        parts = [
            self._points(np.random.default_rng([self.seed, 2, block]), BLOCK)[
                offset : offset + take
            ]
            for block, offset, take in self._span(start, count)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.dim), np.float32)

    def documents(self, start: int, count: int) -> list[SyntheticDoc]:
        """The documents of chunks ``start .. start + count`` (both multiples of ``BLOCK``):
        one to four chunks each, never across a block's end."""
        if start % BLOCK or count % BLOCK:
            raise ValueError(f"documents come in whole blocks of {BLOCK:,} chunks")
        out: list[SyntheticDoc] = []
        for block in range(start // BLOCK, (start + count) // BLOCK):
            rng = np.random.default_rng([self.seed, 3, block])
            pos = 0
            while pos < BLOCK:
                size = min(int(rng.integers(1, 5)), BLOCK - pos)
                acl = {"group:all"} | {g for g, share in GROUPS.items() if rng.random() < share}
                tenant = TENANTS[0] if rng.random() < ACME_SHARE else TENANTS[1]
                out.append(SyntheticDoc(block * BLOCK + pos, size, frozenset(acl), tenant))
                pos += size
        return out

    # -- queries ---------------------------------------------------------------------------

    def _query_block(self, block: int) -> tuple[list[str], F32]:
        rng = np.random.default_rng([self.seed, 4, block])
        lengths = rng.integers(2, 5, size=QUERY_BLOCK)
        words = self.tokens(rng, int(lengths.sum())).tolist()
        texts, pos = [], 0
        for n in lengths.tolist():
            texts.append(" ".join(self.words[w] for w in words[pos : pos + n]))
            pos += n
        return texts, self._points(np.random.default_rng([self.seed, 5, block]), QUERY_BLOCK)

    def queries(self, count: int) -> tuple[list[str], F32]:
        """The first ``count`` queries: texts of two to four terms of the Zipf law, and
        vectors (the first ``n`` are the same whatever ``count``)."""
        texts: list[str] = []
        vectors = []
        for block in range(-(-count // QUERY_BLOCK)):
            t, v = self._query_block(block)
            texts += t
            vectors.append(v)
        if not vectors:
            return [], np.empty((0, self.dim), np.float32)
        return texts[:count], np.concatenate(vectors)[:count]


def synthetic_vectors(n: int, n_queries: int, dim: int = DIM, seed: int = 11) -> tuple[F32, F32]:
    """``n`` corpus vectors and ``n_queries`` query vectors of the mixture above."""
    corpus = Corpus(seed=seed, dim=dim)
    return corpus.vectors(0, n), corpus.queries(n_queries)[1]


def zipf_texts(n: int, *, seed: int = 3, start: int = 0) -> list[str]:
    """Chunk texts ``start .. start + n`` of the Zipf corpus."""
    return Corpus(seed=seed).texts(start, n)
