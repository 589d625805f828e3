"""Embedders by model id, loaded on demand and shared: each collection embeds (its chunks, its
queries) with the model it pinned when it was made, whatever the default for new ones is.

A ``Model`` is what one embedding model brings: the embedder, a chunker bounded in that
model's own tokens and window, and the memo of text -> vector the answer path shares (so a
memo never mixes models). ``Models`` keeps at most ``capacity`` of them, the default always
among them; the least recently used other one is let go first (a call still running on it
keeps it alive until it returns).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ragstack.answering import MemoEmbed
from ragstack.embedding import Embedder
from ragstack.ingest.chunking import Chunker


@dataclass(frozen=True)
class Model:
    embedder: Embedder
    chunker: Chunker
    memo: MemoEmbed
    window: int = 0  # the model's input window in tokens (0: the chunker's bound)

    @property
    def max_tokens(self) -> int:
        return self.window or self.chunker.max_tokens

    @property
    def model_id(self) -> str:
        return self.embedder.model_id


class Models:
    """Model id -> ``Model``, built by ``load`` on first use (a ``ConfigError`` when that
    model cannot run here, saying what to install or set)."""

    def __init__(
        self,
        default_id: str,
        load: Callable[[str], Model],
        *,
        capacity: int = 3,
        load_at: Callable[[str, Path], Model] | None = None,
    ):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.default_id = default_id
        self.capacity = capacity
        self._load = load
        self._load_at = load_at
        self._models: OrderedDict[str, Model] = OrderedDict()
        self._lock = threading.Lock()

    def default(self) -> Model:
        """The model new collections pin."""
        return self.get(self.default_id)

    def get(self, model_id: str, path: Path | None = None) -> Model:
        """The model ``model_id``; a local one not configured in the settings can be found at
        ``path`` (a live re-embed's ``--model-path``)."""
        with self._lock:
            found = self._models.get(model_id)
            if found is not None:
                self._models.move_to_end(model_id)
                return found
            if path is not None and self._load_at is not None:
                model = self._load_at(model_id, path)
            else:
                model = self._load(model_id)  # cheap: weights load on the first embedding
            if model.model_id != model_id:
                raise RuntimeError(f"asked for {model_id}, built {model.model_id}")
            self._models[model_id] = model
            while len(self._models) > self.capacity:
                victim = next(k for k in self._models if k != self.default_id)
                del self._models[victim]
            return model

    def loaded(self) -> list[str]:
        """Model ids held now, least recently used first."""
        with self._lock:
            return list(self._models)
