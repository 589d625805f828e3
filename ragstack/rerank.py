"""Rerankers: score a query against each of a few passages jointly; higher is better.

A reranker sees the query and the passage together, so it cannot be precomputed like an
embedding; it reorders the first stage's top few dozen hits. Weights never come from a hub:
``CrossEncoderReranker`` loads a sentence-transformers cross-encoder from a local directory,
the kind a user has on disk (cross-encoder/ms-marco-MiniLM-L-6-v2, BAAI/bge-reranker-base) or
the one ``python -m evals.train_reranker`` fine-tunes from the packaged MiniLM weights.

Nothing heavy is imported here: torch and sentence-transformers load on first use.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ragstack.embedding import (
    ONNX_SUFFIX,
    export_onnx,
    file_sha256,
    onnx_cache_key,
    onnx_session,
    onnx_tokenizer,
    run_batches,
)
from ragstack.errors import ConfigError
from ragstack.extras import require

DEFAULT_MAX_LENGTH = 256


@runtime_checkable
class Reranker(Protocol):
    """``rerank`` returns one score per passage, in the passages' order (higher = better).

    Scores compare passages of one query; they are not probabilities and not comparable
    across queries or models."""

    @property
    def model_id(self) -> str: ...

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]: ...


def check_cross_encoder_dir(model_dir: Path) -> dict[str, Any]:
    """The ``config.json`` of a local one-logit sequence-classification model, or a
    ``ConfigError`` saying why ``model_dir`` is not one (read without loading torch)."""
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"no cross-encoder model at {model_dir} (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config_file} is not readable JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{config_file} is not a JSON object")
    archs = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in archs):
        raise ConfigError(
            f"{model_dir} is not a cross-encoder: its architectures are {archs or 'unset'}, "
            "a reranker needs a *ForSequenceClassification model with one output "
            "(an embedding model such as all-MiniLM-L6-v2 is not one)"
        )
    labels = config.get("num_labels", len(config.get("id2label") or {0: "LABEL_0"}))
    if labels != 1:
        raise ConfigError(f"{model_dir}: a reranker needs one output label, it has {labels}")
    if not (model_dir / "model.safetensors").is_file():
        raise ConfigError(
            f"{model_dir}: no model.safetensors (pickled pytorch_model.bin weights are not loaded)"
        )
    if not any((model_dir / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        raise ConfigError(f"{model_dir}: no tokenizer (tokenizer.json or vocab.txt)")
    return config


def reranker_identity(reranker: Reranker) -> str:
    """What a weight tuned for ``reranker`` is tied to: its directory name, a hash of its
    weights and the length it reads (not the backend: the ONNX export scores like torch).
    Retraining into the same directory, or reading more tokens, makes a new identity."""
    model_dir = getattr(reranker, "model_dir", None)
    max_length = getattr(reranker, "max_length", None)
    if not isinstance(model_dir, Path):
        return reranker.model_id
    weights = model_dir / "model.safetensors"
    try:
        st = weights.stat()
    except OSError:
        return f"{reranker.model_id}:{max_length}"
    return f"{model_dir.name}@{_digest(str(weights), st.st_mtime_ns, st.st_size)}:{max_length}"


@functools.lru_cache(maxsize=16)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """A file's short hash, once per version of it (``mtime_ns`` and ``size`` key the cache)."""
    return file_sha256(Path(path))[:12]


def trained_max_length(model_dir: Path) -> int:
    """The ``max_length`` a model was trained at, from the ``training.json`` that
    ``evals.train_reranker`` writes beside it; ``DEFAULT_MAX_LENGTH`` for any other model."""
    try:
        record = json.loads((Path(model_dir) / "training.json").read_text(encoding="utf-8"))
        length = record["config"]["max_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_LENGTH
    return length if isinstance(length, int) and 16 <= length <= 8192 else DEFAULT_MAX_LENGTH


def checked_model_dir(model_dir: Path, max_length: int, batch_size: int) -> Path:
    """``model_dir`` once it and the settings are known to work, else a ``ConfigError``."""
    if max_length < 16:
        raise ConfigError(f"reranker max_length must be at least 16 tokens, got {max_length}")
    if batch_size < 1:
        raise ConfigError(f"reranker batch_size must be positive, got {batch_size}")
    check_cross_encoder_dir(Path(model_dir))
    return Path(model_dir)


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` from a local directory, on CPU.

    The directory is checked when constructed; the model loads on first use (``warm_up``).
    Query and passage are truncated together to ``max_length`` tokens, which bounds the cost:
    on a 2-core CPU it is the difference between fast enough and not (see
    ``evals/bench_rerank.py``). Scores are the model's raw logits. One lock serialises
    inference, so one instance can be shared by threads.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        model_id: str | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 32,
    ) -> None:
        self.model_dir = checked_model_dir(model_dir, max_length, batch_size)
        self._model_id = model_id or f"local:{self.model_dir.name}"
        self.max_length = max_length
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._model: Any = None
        self._identity: Any = None

    @property
    def model_id(self) -> str:
        return self._model_id

    def warm_up(self) -> None:
        """Load the model (a second or two); ``rerank`` calls it on first use."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        require("sentence_transformers", "the torch reranker", "torch")
        import torch
        import transformers
        from sentence_transformers import CrossEncoder

        transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            model = CrossEncoder(
                str(self.model_dir),
                device="cpu",
                local_files_only=True,
                trust_remote_code=False,
                max_length=self.max_length,
                model_kwargs={"use_safetensors": True},
            )
        except Exception as exc:  # torch, transformers and safetensors each raise their own
            raise ConfigError(f"cannot load the cross-encoder at {self.model_dir}: {exc}") from exc
        model.eval()
        self._identity = torch.nn.Identity()
        self._model = model

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        with self._lock:
            if self._model is None:
                self._load()
            import torch

            with torch.inference_mode():
                scores = self._model.predict(
                    [(query, p) for p in passages],
                    batch_size=self.batch_size,
                    show_progress_bar=False,
                    activation_fn=self._identity,
                    convert_to_numpy=True,
                )
        return [float(s) for s in scores.reshape(-1)]


class OnnxReranker:
    """The same local cross-encoder, exported once to ONNX int8 (cached in ``cache_dir``,
    keyed by a hash of the weights) and run on onnxruntime: several times faster than torch
    on CPU, scores within a small tolerance of it (a different ``model_id``). Thread-safe:
    onnxruntime sessions are, and the tokenizer is only read."""

    def __init__(
        self,
        model_dir: Path,
        *,
        cache_dir: Path,
        model_id: str | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        self.model_dir = checked_model_dir(model_dir, max_length, batch_size)
        if not (self.model_dir / "tokenizer.json").is_file():
            raise ConfigError(f"the ONNX reranker needs {self.model_dir / 'tokenizer.json'}")
        self._model_id = model_id or f"local:{self.model_dir.name}{ONNX_SUFFIX}"
        self.cache_dir = cache_dir
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads or len(os.sched_getaffinity(0))
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._pad_id = 0
        self.onnx_path: Path | None = None

    @property
    def model_id(self) -> str:
        return self._model_id

    def warm_up(self) -> None:
        """Export (once per weights, ~10 s) and load the model; ``rerank`` calls it."""
        with self._lock:
            if self._session is not None:
                return
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            key = onnx_cache_key(self.model_dir, "logits")
            path = self.cache_dir / f"reranker-{self.model_dir.name}-{key}.int8.onnx"
            if not path.is_file():
                try:
                    export_onnx(self.model_dir, path, head="logits")
                except Exception as exc:  # torch and the exporter each raise their own
                    raise ConfigError(
                        f"cannot export the cross-encoder at {self.model_dir}: {exc}"
                    ) from exc
            session = onnx_session(path, self.threads)
            tokenizer_file = self.model_dir / "tokenizer.json"
            self._tokenizer, self._pad_id = onnx_tokenizer(tokenizer_file, self.max_length)
            self._session, self.onnx_path = session, path

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        self.warm_up()
        encodings = self._tokenizer.encode_batch([(query, p) for p in passages])
        out = np.empty(len(passages), dtype=np.float32)
        for rows, logits, _ in run_batches(self._session, encodings, self.batch_size, self._pad_id):
            out[rows] = logits.reshape(-1)
        return [float(s) for s in out]
