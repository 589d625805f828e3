"""The composition root: the only place that turns settings into objects."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ragstack import tracing
from ragstack.answering import MemoEmbed
from ragstack.config import Settings
from ragstack.domain import CollectionInfo
from ragstack.embedding import (
    Embedder,
    HashingEmbedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
)
from ragstack.errors import ConfigError, InputError
from ragstack.generation.base import Generator
from ragstack.ingest.chunking import Chunker, HfTokenCounter, TokenCounter, WordCounter
from ragstack.ingest.pipeline import Redactor
from ragstack.rerank import Reranker
from ragstack.service import Components, Ragstack
from ragstack.store import Store

if TYPE_CHECKING:
    from ragstack.parsing import DocumentParser


def make_embedder(settings: Settings) -> tuple[Embedder, TokenCounter, int]:
    """``(embedder, its token counter, its input window in tokens)``."""
    if settings.embedder == "hashing":
        return HashingEmbedder(64), WordCounter(), 10_000
    model: SentenceTransformerEmbedder | OnnxEmbedder
    if settings.embedder == "onnx-int8":
        model = OnnxEmbedder(
            settings.embedder_model_path,
            cache_dir=settings.data_dir / "models",
            batch_size=settings.embed_batch_size,
            threads=settings.onnx_threads,
        )
    else:
        path = settings.embedder_model_path
        queries = None
        if settings.onnx_queries and OnnxEmbedder.can_export(path):
            queries = OnnxEmbedder(
                path,
                cache_dir=settings.data_dir / "models",
                quantize=False,
                threads=settings.onnx_threads,
            )
        model = SentenceTransformerEmbedder(
            path, batch_size=settings.embed_batch_size, query_engine=queries
        )
    tok = model.tokenizer_file
    counter: TokenCounter = HfTokenCounter(tok) if tok else WordCounter()
    return model, counter, model.max_tokens


def ingest_parts(settings: Settings) -> tuple[Embedder, Chunker, DocumentParser]:
    """What ingest runs, wherever it runs (here, or on an ingest worker)."""
    from ragstack.parsing import DocumentParser
    from ragstack.parsing.ocr import OcrSettings

    embedder, counter, window = make_embedder(settings)
    chunker = Chunker(
        counter,
        max_tokens=min(settings.chunk_max_tokens, window),
        overlap_tokens=settings.chunk_overlap_tokens,
    )
    ocr = OcrSettings(
        mode=settings.ocr,
        languages=settings.ocr_languages,
        dpi=settings.ocr_dpi,
        timeout_s=settings.ocr_timeout_s,
        max_pixels=settings.ocr_max_pixels,
        workers=settings.ocr_workers,
    )
    return embedder, chunker, DocumentParser(max_bytes=settings.max_file_bytes, ocr=ocr)


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
    embedder, chunker, parser = ingest_parts(settings)
    from ragstack.ingest.sources import resolve_source

    memo = MemoEmbed(embedder)

    return Ragstack(
        settings,
        store,
        Components(
            embedder=embedder,
            chunker=chunker,
            parser=parser,
            redactor_for=redactor_for,
            resolve_source=resolve_source,
            generator_for=generator_factory(settings, memo),
            reranker=make_reranker(settings),
            memo=memo,
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


def generator_factory(settings: Settings, memo: MemoEmbed) -> Callable[[str], Generator]:
    """Generators by name, each built on first use and then shared (the local model loads
    once; its calls are serialised inside it)."""
    built: dict[str, Generator] = {}
    lock = threading.Lock()

    def make(name: str) -> Generator:
        from ragstack.generation.tokens import default_token_counter

        if name == "extractive":
            from ragstack.generation.extractive import ExtractiveGenerator

            counter, _ = default_token_counter()
            return ExtractiveGenerator(
                memo,
                counter,
                min_score=settings.extractive_min_score,
                relative_min=settings.extractive_relative_min,
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
