"""The composition root: the only place that turns settings into objects."""

from __future__ import annotations

from ragstack.config import Settings
from ragstack.domain import CollectionInfo
from ragstack.embedding import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from ragstack.ingest.chunking import Chunker, HfTokenCounter, TokenCounter, WordCounter
from ragstack.ingest.pipeline import Redactor
from ragstack.service import Components, Ragstack
from ragstack.store import Store


def make_embedder(settings: Settings) -> tuple[Embedder, TokenCounter, int]:
    """``(embedder, its token counter, its input window in tokens)``."""
    if settings.embedder == "hashing":
        return HashingEmbedder(64), WordCounter(), 10_000
    st = SentenceTransformerEmbedder(
        settings.embedder_model_path, batch_size=settings.embed_batch_size
    )
    tok = st.tokenizer_file
    counter: TokenCounter = HfTokenCounter(tok) if tok else WordCounter()
    return st, counter, st.max_tokens


def build(settings: Settings | None = None) -> Ragstack:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url)
    store.create_schema()
    embedder, counter, window = make_embedder(settings)
    chunker = Chunker(
        counter,
        max_tokens=min(settings.chunk_max_tokens, window),
        overlap_tokens=settings.chunk_overlap_tokens,
    )
    from ragstack.ingest.sources import resolve_source
    from ragstack.parsing import DocumentParser
    from ragstack.redaction import make_redactor

    def redactor_for(info: CollectionInfo, salt: str) -> Redactor:
        return make_redactor(info.pii_mode, ner=info.pii_ner, salt=salt)

    return Ragstack(
        settings,
        store,
        Components(
            embedder=embedder,
            chunker=chunker,
            parser=DocumentParser(max_bytes=settings.max_file_bytes),
            redactor_for=redactor_for,
            resolve_source=resolve_source,
        ),
    )
