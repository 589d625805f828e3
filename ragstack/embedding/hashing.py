"""A fast, deterministic fake embedder for plumbing tests (it has no notion of meaning)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from ragstack.embedding.base import FloatMatrix

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Deterministic bag-of-words hashing vectors: fast plumbing tests, no model."""

    def __init__(self, dim: int = 64) -> None:
        self._dim = dim

    @property
    def model_id(self) -> str:
        return f"hashing-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                out[row, h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        normed: FloatMatrix = out / norms
        return normed
