"""The composition root: the only place that turns settings into objects."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ragstack import tracing
from ragstack.adaptation import adapted_model_dir
from ragstack.answering import MemoEmbed
from ragstack.config import Settings
from ragstack.domain import CollectionInfo
from ragstack.embedders import Model, Models
from ragstack.embedding import (
    BACKEND_SUFFIXES,
    DEFAULT_MODEL_ID,
    INT8_MIXED_SUFFIX,
    INT8_SUFFIX,
    ONNX_SUFFIX,
    BertOnnxEmbedder,
    Embedder,
    HashingEmbedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    split_model_id,
)
from ragstack.errors import ConfigError, InputError
from ragstack.extras import require
from ragstack.generation.base import Generator
from ragstack.ingest.chunking import Chunker, HfTokenCounter, TokenCounter, WordCounter
from ragstack.ingest.items import Redactor
from ragstack.rerank import Reranker
from ragstack.service import Components, Ragstack
from ragstack.store import Store

if TYPE_CHECKING:
    from connectors.fetch import FetchPolicy
    from ragstack.parsing import DocumentParser


def default_model_id(settings: Settings) -> str:
    """The model id new collections pin under these settings."""
    if settings.embedder == "hashing":
        return HashingEmbedder(64).model_id
    path = settings.embedder_model_path
    source = DEFAULT_MODEL_ID if path is None else f"local:{path.name}"
    suffix = BACKEND_SUFFIXES.get(settings.embedder, "")
    return source + suffix


def model_id_for(settings: Settings, embedder: str, path: Path | None = None) -> str:
    """The model id an operator means by ``embedder``: a backend name (``int8``,
    ``sentence-transformers``, ``onnx-int8``, ``hashing``: the packaged MiniLM or the model at
    ``path``, as ``RAGSTACK_EMBEDDER`` means it), else a model id as it is."""
    if embedder in (*BACKEND_SUFFIXES, "sentence-transformers", "hashing"):
        path = path or settings.embedder_model_path
        return default_model_id(
            settings.model_copy(update={"embedder": embedder, "embedder_model_path": path})
        )
    return embedder


def make_embedder(
    settings: Settings, model_id: str | None = None, model_path: Path | None = None
) -> tuple[Embedder, TokenCounter, int]:
    """``(embedder, its token counter, its input window in tokens)`` for ``model_id`` (default:
    the model new collections pin), or a ``ConfigError`` saying what it needs. A local model
    is the one at ``model_path``, else at ``RAGSTACK_EMBEDDER_MODEL_PATH``, else one that
    ``ragstack adapt`` wrote under the data dir (``models/adapted/<name>``)."""
    model_id = model_id or default_model_id(settings)
    if model_id.startswith("hashing-") and model_id[8:].isdigit():
        return HashingEmbedder(int(model_id[8:])), WordCounter(), 10_000
    source, suffix = split_model_id(model_id)
    local = model_path or settings.embedder_model_path
    adapted = adapted_model_dir(settings.data_dir, source.removeprefix("local:"))
    if source == DEFAULT_MODEL_ID:
        path = None
    elif local is not None and source == f"local:{local.name}":
        path = local
    elif source.startswith("local:") and adapted is not None:
        path = adapted  # a model `ragstack adapt` wrote under the data dir
    else:
        raise ConfigError(
            f"no model {model_id!r} here: a collection pinned to a local model needs "
            "RAGSTACK_EMBEDDER_MODEL_PATH set to that model's directory"
        )
    model: SentenceTransformerEmbedder | OnnxEmbedder | BertOnnxEmbedder
    if suffix in (INT8_SUFFIX, INT8_MIXED_SUFFIX):
        model = BertOnnxEmbedder(path, mixed=suffix == INT8_MIXED_SUFFIX,
                                 batch_size=settings.embed_batch_size,
                                 threads=settings.onnx_threads)  # fmt: skip
    elif suffix == ONNX_SUFFIX:
        model = OnnxEmbedder(
            path,
            cache_dir=settings.data_dir / "models",
            batch_size=settings.embed_batch_size,
            threads=settings.onnx_threads,
        )
    else:
        require("sentence_transformers", f"the embedder {model_id} (MiniLM on torch)", "torch")
        queries = None
        if settings.onnx_queries and BertOnnxEmbedder.can_build(path):
            queries = BertOnnxEmbedder(path, quantize=False, threads=settings.onnx_threads)
        model = SentenceTransformerEmbedder(
            path, batch_size=settings.embed_batch_size, query_engine=queries
        )
    tok = model.tokenizer_file
    counter: TokenCounter = HfTokenCounter(tok) if tok else WordCounter()
    return model, counter, model.max_tokens


def make_model(settings: Settings, model_id: str, model_path: Path | None = None) -> Model:
    """Everything a collection pinned to ``model_id`` embeds and chunks with."""
    embedder, counter, window = make_embedder(settings, model_id, model_path)
    chunker = Chunker(
        counter,
        max_tokens=min(settings.chunk_max_tokens, window),
        overlap_tokens=settings.chunk_overlap_tokens,
    )
    return Model(embedder, chunker, MemoEmbed(embedder), window)


def make_parser(settings: Settings) -> DocumentParser:
    from ragstack.parsing import DocumentParser
    from ragstack.parsing.ocr import OcrSettings

    ocr = OcrSettings(
        mode=settings.ocr,
        languages=settings.ocr_languages,
        dpi=settings.ocr_dpi,
        timeout_s=settings.ocr_timeout_s,
        max_pixels=settings.ocr_max_pixels,
        workers=settings.ocr_workers,
    )
    return DocumentParser(
        max_bytes=settings.max_file_bytes, ocr=ocr, max_unpacked_bytes=settings.unpacked_limit
    )


def fetch_policies(settings: Settings) -> Callable[[bool], FetchPolicy]:
    """The fetch policy for a caller: ``trusted`` (the operator's CLI) may fetch private
    addresses when ``cli_fetch_private``; anyone else only public ones and the allow-list."""
    from dataclasses import replace

    from connectors import ConnectorError, FetchPolicy

    hint = "an operator can allow it with RAGSTACK_FETCH_ALLOW"
    try:
        remote = FetchPolicy(
            allow=settings.fetch_allow,
            max_bytes=settings.max_file_bytes,
            timeout=settings.fetch_timeout_s,
            hint=hint,
        )
    except ConnectorError as exc:
        raise ConfigError(f"RAGSTACK_FETCH_ALLOW: {exc}") from exc
    local = replace(
        remote,
        allow_private=settings.cli_fetch_private,
        hint=f"{hint} or RAGSTACK_CLI_FETCH_PRIVATE",
    )
    return lambda trusted: local if trusted else remote


def ingest_parts(
    settings: Settings, model_id: str | None = None
) -> tuple[Embedder, Chunker, DocumentParser]:
    """What ingest runs, wherever it runs (here, or on an ingest worker)."""
    model = make_model(settings, model_id or default_model_id(settings))
    return model.embedder, model.chunker, make_parser(settings)


def redactor_for(info: CollectionInfo, salt: str) -> Redactor:
    """A collection's PII redactor (its mode, NER choice and salt)."""
    from ragstack.redaction import make_redactor

    return make_redactor(info.pii_mode, ner=info.pii_ner, salt=salt)


def build(settings: Settings | None = None) -> Ragstack:
    settings = settings or Settings()
    tracing.configure(settings.otel_exporter)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url)
    store.create_schema()
    from ragstack.ingest.sources import resolve_source

    models = Models(
        default_model_id(settings),
        lambda model_id: make_model(settings, model_id),
        capacity=settings.embedders_loaded,
        load_at=lambda model_id, path: make_model(settings, model_id, path),
    )
    models.default()  # a default that cannot run here fails now, with what it needs

    return Ragstack(
        settings,
        store,
        Components(
            models=models,
            parser=make_parser(settings),
            redactor_for=redactor_for,
            resolve_source=resolve_source,
            fetch_policy_for=fetch_policies(settings),
            generator_for=generator_factory(settings, models),
            reranker=make_reranker(settings),
            model_id_for=lambda embedder, path: model_id_for(settings, embedder, path),
        ),
    )


def make_reranker(settings: Settings) -> Reranker | None:
    if settings.reranker_path is None:
        return None
    from ragstack.rerank import CrossEncoderReranker, OnnxReranker, trained_max_length

    max_length = settings.reranker_max_length or trained_max_length(settings.reranker_path)
    if settings.reranker_backend == "onnx-int8":
        return OnnxReranker(
            settings.reranker_path,
            cache_dir=settings.data_dir / "models",
            max_length=max_length,
            threads=settings.onnx_threads,
        )
    return CrossEncoderReranker(settings.reranker_path, max_length=max_length)


def generator_factory(settings: Settings, models: Models) -> Callable[[str], Generator]:
    """Generators by name, each built on first use and then shared (the local model loads
    once; its calls are serialised inside it). The extractive one scores sentences with the
    default embedder."""
    built: dict[str, Generator] = {}
    lock = threading.Lock()

    def make(name: str) -> Generator:
        from ragstack.generation.tokens import default_token_counter

        if name == "extractive":
            from ragstack.generation.extractive import ExtractiveGenerator

            counter, _ = default_token_counter()
            return ExtractiveGenerator(
                models.default().memo,
                counter,
                min_score=settings.extractive_min_score,
                relative_min=settings.extractive_relative_min,
                part_min_score=settings.extractive_part_min_score,
            )
        if name == "local":
            from ragstack.generation.local import LlamaCppGenerator

            return LlamaCppGenerator(settings.local_model_path, n_threads=settings.local_threads)
        if name == "remote":
            from ragstack.generation.remote import OpenAICompatibleGenerator

            if not settings.remote_url:
                raise ConfigError("the remote generator needs RAGSTACK_REMOTE_URL")
            key = settings.remote_api_key
            return OpenAICompatibleGenerator(
                settings.remote_url,
                settings.remote_model,
                api_key=key.get_secret_value() if key is not None else None,
                timeout_s=settings.generator_timeout_s,
            )
        raise InputError(f"generator must be extractive, local or remote, not {name!r}")

    def get(name: str) -> Generator:
        with lock:
            if name not in built:
                built[name] = make(name)
            return built[name]

    return get
