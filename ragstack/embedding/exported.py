"""A local transformer exported to ONNX with torch (once, cached by weights and recipe) and
run on onnxruntime: ``OnnxEmbedder``, and the export, session and batching that the ONNX
cross-encoders (``ragstack.rerank``) share."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ragstack.embedding.base import (
    DEFAULT_MODEL_ID,
    ONNX_SUFFIX,
    FloatMatrix,
    all_cores,
    length_batches,
    model_window,
    onnx_session,
    packaged_minilm_path,
    padded,
    read_json,
    sentence_pooling,
)
from ragstack.errors import ConfigError
from ragstack.extras import require

_OPSET = 17
# How the int8 file is made. Part of its cache key: changing anything here re-exports.
ONNX_RECIPE: dict[str, object] = {
    "recipe": 1,
    "exporter": "torchscript",  # torch.onnx.export(dynamo=False): needs no onnxscript
    "opset": _OPSET,
    "attention": "eager",
    "fusion": "onnxruntime-bert",  # only for the model types in _FUSED
    "weights": "QInt8",
    "per_channel": True,  # per-tensor scales lose too much (cosine ~0.94 to torch)
    "matmul_const_b_only": True,  # activation x activation products stay float
}
_FUSED = frozenset({"bert"})  # model types whose onnxruntime fusion the tests compare to torch
_WEIGHTS = "model.safetensors"  # never pytorch_model.bin: a pickle is code


class _NoPreprocessHint(logging.Filter):
    """Drops quantize_dynamic's root-logger advice to run its pre-processing first: a user
    cannot act on it (for BERT the onnxruntime fusion step does that work)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


class OnnxEmbedder:
    """The same local sentence-transformers weights, exported to ONNX int8 and run on
    onnxruntime (CPU). The export (torch, a few seconds) happens once per weights and recipe,
    into ``cache_dir``; later runs load the cached file and need no torch at all.

    Weights are int8 per channel; activations are quantised on the fly with one scale per
    batch, so a text's vector moves slightly (cosine ~0.99) with the texts batched with it.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        cache_dir: Path,
        model_id: str | None = None,
        batch_size: int = 16,
        threads: int | None = None,
        quantize: bool = True,
    ) -> None:
        self.model_path = model_path or packaged_minilm_path()
        self.quantize = quantize
        self.pooling = self._check(self.model_path)
        hidden = read_json(self.model_path / "config.json").get("hidden_size")
        if not isinstance(hidden, int):
            raise ConfigError(f"{self.model_path}: no hidden_size in config.json")
        self._dim = hidden
        self.source_id = DEFAULT_MODEL_ID if model_path is None else f"local:{self.model_path.name}"
        # float32 gives torch's vectors (to float rounding): the same model id
        self._model_id = model_id or self.source_id + (ONNX_SUFFIX if quantize else "")
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.threads = threads or all_cores()
        st_config = read_json(self.model_path / "sentence_bert_config.json")
        self._lower = bool(st_config.get("do_lower_case", False))
        self._session: Any = None
        self._tokenizer: Any = None
        self._pad_id = 0
        self.onnx_path: Path | None = None

    @staticmethod
    def _check(model_path: Path) -> str:
        """The model's pooling, or a ``ConfigError`` saying why it cannot be exported."""
        if not (model_path / "config.json").is_file():
            raise ConfigError(f"no sentence-transformers model at {model_path}")
        if not (model_path / "tokenizer.json").is_file():
            raise ConfigError(f"the ONNX embedder needs {model_path / 'tokenizer.json'}")
        if not (model_path / _WEIGHTS).is_file():
            raise ConfigError(
                f"the ONNX embedder loads weights from {_WEIGHTS} only (no pickled "
                f"pytorch_model.bin); there is none in {model_path}"
            )
        return sentence_pooling(model_path)

    @classmethod
    def can_export(cls, model_path: Path | None) -> bool:
        try:
            cls._check(model_path or packaged_minilm_path())
        except ConfigError:
            return False
        return True

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        """Mean and CLS pooling keep the transformer's width."""
        return self._dim

    @property
    def max_tokens(self) -> int:
        return model_window(self.model_path)

    @property
    def tokenizer_file(self) -> Path:
        return self.model_path / "tokenizer.json"

    def cache_key(self) -> str:
        """A hash of the weights, the model config and ``ONNX_RECIPE``."""
        return onnx_cache_key(self.model_path, "hidden", quantize=self.quantize)

    def warm_up(self) -> None:
        """Export the model if no cached export exists, then load it; ``embed`` calls this."""
        if self._session is not None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", self.source_id)
        kind = "int8" if self.quantize else "fp32"
        path = self.cache_dir / f"{name}-{self.cache_key()}.{kind}.onnx"
        if not path.is_file():
            self._export(path)
        session = onnx_session(path, self.threads)
        self._tokenizer, self._pad_id = onnx_tokenizer(self.tokenizer_file, self.max_tokens)
        self._session, self.onnx_path = session, path

    def _export(self, target: Path) -> None:
        export_onnx(self.model_path, target, head="hidden", quantize=self.quantize)

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        self.warm_up()
        prepared = [t.lower() for t in texts] if self._lower else list(texts)
        encodings = self._tokenizer.encode_batch(prepared)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows, hidden, mask in run_batches(
            self._session, encodings, self.batch_size, self._pad_id
        ):
            out[rows] = self._pool(hidden, mask)
        return out

    def _pool(self, hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> FloatMatrix:
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        normed: FloatMatrix = (pooled / norms).astype(np.float32)
        return normed


OnnxHead = Literal["hidden", "logits"]


def onnx_cache_key(model_path: Path, head: OnnxHead, *, quantize: bool = True) -> str:
    """A hash of the weights, the model config, the head and ``ONNX_RECIPE``."""
    recipe = ONNX_RECIPE if head == "hidden" else {**ONNX_RECIPE, "head": head}
    if not quantize:
        recipe = {**recipe, "weights": "float32"}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    for name in ("config.json", _WEIGHTS):
        path = model_path / name
        if path.is_file():
            digest.update(f"\0{name}\0".encode())
            with path.open("rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()[:24]


def onnx_tokenizer(path: Path, max_length: int) -> tuple[Any, int]:
    """``(tokenizer, its pad id)`` from a ``tokenizer.json``: no padding of its own (batches
    pad to their longest input), inputs (pairs: longest first) truncated to ``max_length``."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    padding = tokenizer.padding
    pad_id = int(padding["pad_id"]) if padding else 0
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
    return tokenizer, pad_id


def run_batches(
    session: Any, encodings: Sequence[Any], batch_size: int, pad_id: int
) -> Iterator[tuple[npt.NDArray[np.intp], Any, npt.NDArray[np.int64]]]:
    """Runs ``session`` over tokenised inputs in batches of similar length (less padding):
    ``(rows of the inputs, the batch's first output, its attention mask)`` per batch."""
    wanted = frozenset(i.name for i in session.get_inputs())
    lengths, batches = length_batches(encodings, batch_size)
    for rows in batches:
        feed = padded(encodings, rows, lengths, pad_id)
        outputs = session.run(None, {k: v for k, v in feed.items() if k in wanted})
        yield rows, outputs[0], feed["attention_mask"]


def export_onnx(model_path: Path, target: Path, *, head: OnnxHead, quantize: bool = True) -> None:
    """Trace a local transformer to ONNX (float), fuse what onnxruntime knows, quantise to
    int8 (``ONNX_RECIPE``) unless told not to, and move the result to ``target`` atomically.
    ``head="hidden"`` exports the encoder's ``last_hidden_state`` (embedders pool it);
    ``"logits"`` a sequence-classification model's logits (cross-encoders)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    require("torch", "exporting a model to ONNX with torch", "torch")
    import onnx
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic

    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    auto = (
        transformers.AutoModel
        if head == "hidden"
        else transformers.AutoModelForSequenceClassification
    )
    model = auto.from_pretrained(
        str(model_path),
        attn_implementation="eager",
        local_files_only=True,
        use_safetensors=True,
    ).eval()
    config = model.config
    takes_types = "token_type_ids" in inspect.signature(model.forward).parameters
    output = "last_hidden_state" if head == "hidden" else "logits"

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, types: torch.Tensor
        ) -> torch.Tensor:
            kwargs = {"token_type_ids": types} if takes_types else {}
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            result: torch.Tensor = getattr(out, output)
            return result

    # Trace with a padded row, so that no "mask is all ones" shortcut is recorded.
    ids = torch.randint(0, config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "tokens"} for n in names}
    axes[output] = {0: "batch", 1: "tokens"} if head == "hidden" else {0: "batch"}
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        step = Path(tmp) / "float.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(
                Wrapped(),
                (ids, mask, torch.zeros_like(ids)),
                str(step),
                dynamo=False,
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                opset_version=_OPSET,
            )
        if config.model_type in _FUSED:
            from onnxruntime.transformers.optimizer import optimize_model

            fused = optimize_model(
                str(step),
                model_type="bert",
                num_heads=config.num_attention_heads,
                hidden_size=config.hidden_size,
                opt_level=1,
            )
            step = Path(tmp) / "fused.onnx"
            fused.save_model_to_file(str(step))
        if not quantize:
            _commit(step, target)
            return
        part = Path(tmp) / "int8.onnx"
        hint = _NoPreprocessHint()
        logging.getLogger().addFilter(hint)
        try:
            quantize_dynamic(
                step,
                part,
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={
                    "MatMulConstBOnly": True,
                    "DefaultTensorType": onnx.TensorProto.FLOAT,
                },
            )
        finally:
            logging.getLogger().removeFilter(hint)
        _commit(part, target)


def _commit(part: Path, target: Path) -> None:
    with part.open("rb") as fh:
        os.fsync(fh.fileno())
    part.replace(target)  # atomic: readers see no file or a whole one
