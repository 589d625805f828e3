"""all-MiniLM-L6-v2 (or any local sentence-transformers directory) on torch."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragstack.embedding.base import (
    DEFAULT_MODEL_ID,
    Embedder,
    FloatMatrix,
    packaged_minilm_path,
)
from ragstack.errors import ConfigError
from ragstack.extras import require


class SentenceTransformerEmbedder:
    """sentence-transformers on torch (CPU), loaded lazily from a local directory.

    With a ``query_engine`` (the fp32 ``BertOnnxEmbedder`` of the same weights: the same vectors to
    float rounding), calls of up to ``QUERY_TEXTS`` texts, such as a search's query, run on it
    instead: onnxruntime's per-call overhead is a fraction of torch's, and a process that only
    searches never loads torch."""

    QUERY_TEXTS = 4

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        model_id: str | None = None,
        batch_size: int = 64,
        threads: int | None = None,
        query_engine: Embedder | None = None,
    ) -> None:
        self.model_path = model_path or packaged_minilm_path()
        if not (self.model_path / "config.json").is_file():
            raise ConfigError(f"no sentence-transformers model at {self.model_path}")
        self._model_id = model_id or (
            DEFAULT_MODEL_ID if model_path is None else f"local:{self.model_path.name}"
        )
        self.batch_size = batch_size
        self.threads = threads
        self.query_engine = query_engine
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
        require("sentence_transformers", "the MiniLM on torch", "torch")
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
        if self.query_engine is not None and 0 < len(texts) <= self.QUERY_TEXTS:
            return self.query_engine.embed(texts)
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
