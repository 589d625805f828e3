"""SQL tables: the source of truth. Indexes hold only chunk ids and can be rebuilt from here.

Chunk ids come from an AUTOINCREMENT key (an identity sequence on PostgreSQL), so an id is never
reused: a changed document gets new chunks and new ids, and a chunk's text and vector
never change under its id. That is what lets the store and the indexes be reconciled by
comparing id sets alone.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


# Row ids that can pass 2**31 (chunks, documents, audit rows): BIGINT on PostgreSQL, and on
# SQLite the INTEGER that makes a column its rowid (64-bit there anyway).
BIGID = BigInteger().with_variant(Integer(), "sqlite")


class CollectionRow(SQLModel, table=True):
    __tablename__ = "collections"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    tenant: str | None = None
    owner: str
    embedder_id: str
    dim: int
    vector_backend: str
    pii_mode: str
    pii_ner: bool = False
    pii_salt: str
    default_acl: str = "[]"  # JSON list of principals given to documents without an ACL
    generation: int = 0  # bumped by every committed change (content or ACL)
    index_generation: int = 0  # bumped only when chunks change: readers reopen indexes on it
    # the dense index the embedder's vectors live in: a directory under the collection's, or
    # a table suffix (``dense``: the first one); a live re-embed builds the next beside it
    dense_name: str = Field(default="dense", sa_column_kwargs={"server_default": "dense"})
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CollectionSettingRow(SQLModel, table=True):
    """Per-collection tuned settings (``fusion``: JSON written by ``ragstack tune``)."""

    __tablename__ = "collection_settings"

    collection_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
        )
    )
    key: str = Field(primary_key=True)
    value: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class DocumentRow(SQLModel, table=True):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("collection_id", "namespace", "uri", name="uq_document_namespace_uri"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIGID, primary_key=True))
    collection_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("collections.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    source: str
    # Who may replace it: "" for operator ingests (CLI), "<tenant>/<principal>" for API
    # ingests, so an API caller's upload or URL never replaces a document of someone else's.
    namespace: str = Field(default="", sa_column_kwargs={"server_default": ""})
    uri: str
    version: str  # of the content only; the ACL is compared on its own (acl_entries, tenant)
    title: str = ""
    mime: str = ""
    meta: str = "{}"  # JSON object
    tenant: str | None = None
    text: str = Field(default="", sa_column=Column(Text, nullable=False))  # redacted parsed text
    size_bytes: int = 0
    chunk_count: int = 0
    flagged_chunks: int = 0
    pii_counts: str = "{}"  # JSON object type -> count
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ChunkRow(SQLModel, table=True):
    __tablename__ = "chunks"
    __table_args__ = (
        Index("ix_chunks_collection_hash", "collection_id", "text_hash"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=Column(BIGID, primary_key=True))
    collection_id: int = Field(index=True)
    document_id: int = Field(
        sa_column=Column(
            BIGID, ForeignKey("documents.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    ordinal: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    text_hash: str  # of the text as embedded (section context + body)
    section: str = ""
    page: int | None = None
    char_start: int
    char_end: int
    token_count: int
    instruction_like: bool = False
    ocr: bool = False  # read by OCR from an image or a scanned page
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # float32, normalised


class ChunkVectorRow(SQLModel, table=True):
    """A chunk's vector under a model the collection is moving to (a live re-embed): the
    shadow set, built beside ``chunks.embedding`` and copied into it when the collection
    switches. Reused by ``(model_id, text_hash)``; gone with its chunk."""

    __tablename__ = "chunk_vectors"
    __table_args__ = (
        Index("ix_chunk_vectors_model_hash", "collection_id", "model_id", "text_hash"),
    )

    chunk_id: int = Field(
        sa_column=Column(BIGID, ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True)
    )
    model_id: str = Field(primary_key=True)
    collection_id: int = Field(
        sa_column=Column(Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False)
    )
    text_hash: str
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # float32, normalised


class ReembedRow(SQLModel, table=True):
    """One live re-embed of a collection: its target model, where it is, who runs it."""

    __tablename__ = "reembed_runs"

    id: int | None = Field(default=None, primary_key=True)
    collection_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("collections.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    from_model: str
    model_id: str
    model_path: str | None = None
    dim: int
    dense_name: str  # the shadow dense index (directory or table suffix)
    from_dense: str  # the dense index it replaces (dropped after the switch)
    # running | switched (new model live; old index and shadow rows still to drop) |
    # completed | failed | cancelled
    status: str = "running"
    total: int = 0
    done: int = 0  # chunks with a shadow vector
    embedded: int = 0  # of them, embedded by this run (the rest reused or resumed)
    reused: int = 0
    message: str = ""
    report: str = "{}"  # JSON: the shadow's index check and recall
    owner: str = ""  # the process running it (its lease)
    heartbeat_at: datetime | None = None
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class AclRow(SQLModel, table=True):
    __tablename__ = "acl_entries"

    document_id: int = Field(
        sa_column=Column(BIGID, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    )
    principal: str = Field(primary_key=True, index=True)


class IngestRunRow(SQLModel, table=True):
    __tablename__ = "ingest_runs"

    id: int | None = Field(default=None, primary_key=True)
    collection_id: int = Field(index=True)
    principal: str
    sources: str = "[]"
    status: str = "running"  # running | completed | failed | interrupted
    counts: str = "{}"
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class IngestErrorRow(SQLModel, table=True):
    __tablename__ = "ingest_errors"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    collection_id: int = Field(index=True)
    uri: str
    kind: str  # unsupported | too_large | empty | corrupt | password_protected | fetch_error | ...
    reason: str
    at: datetime = Field(default_factory=utcnow)


class CacheEntryRow(SQLModel, table=True):
    __tablename__ = "answer_cache"
    __table_args__ = (
        Index("ix_answer_cache_scope", "collection_id", "generation", "scope"),
        Index("ix_answer_cache_view", "collection_id", "scope"),
    )

    id: int | None = Field(default=None, primary_key=True)
    collection_id: int = Field(
        sa_column=Column(Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False)
    )
    generation: int  # the collection's when it was made (lookups go by scope)
    scope: str  # sha256 of the caller, its view (permitted chunks) and request parameters
    question: str = Field(sa_column=Column(Text, nullable=False))  # redacted
    normalised: str = Field(sa_column=Column(Text, nullable=False))
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    response: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    hits: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class CacheStatsRow(SQLModel, table=True):
    __tablename__ = "answer_cache_stats"

    collection_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
        )
    )
    lookups: int = 0
    hits: int = 0
    guard_rejections: int = 0
    stores: int = 0


class ApiKeyRow(SQLModel, table=True):
    """An API key: the public ``key_id`` and a SHA-256 of the secret (never the secret)."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(unique=True, index=True)
    secret_sha256: str
    name: str = ""
    principal: str
    groups: str = "[]"  # JSON list of group principals
    role: str  # reader | writer | admin
    tenant: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class AuditRow(SQLModel, table=True):
    """One audited request: who, what, which chunks came back, how it ended."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, sa_column=Column(BIGID, primary_key=True))
    at: datetime = Field(default_factory=utcnow, index=True)
    key_id: str | None = Field(default=None, index=True)
    tenant: str | None = None  # of the key: a tenant's admin reads its tenant's rows only
    principals: str = "[]"  # JSON
    route: str
    action: str  # search | answer | ingest | delete | key_create | key_revoke | ...
    collection: str | None = None
    query: str | None = Field(default=None, sa_column=Column(Text))  # PII-redacted
    chunk_ids: str = "[]"  # JSON
    status: int
    latency_ms: float
    detail: str = "{}"  # JSON
    request_id: str | None = Field(default=None, index=True)  # as in the logs and X-Request-ID


class JobRow(SQLModel, table=True):
    """An ingest job the API queued: its progress, counts and per-file errors."""

    __tablename__ = "ingest_jobs"

    id: str = Field(primary_key=True)
    collection: str = Field(index=True)
    principal: str
    tenant: str | None = None  # of the key that submitted it: jobs are visible within it
    key_id: str | None = None
    sources: str = "[]"  # JSON: what the job ingests (upload names or URLs)
    status: str = "queued"  # queued | running | completed | failed | interrupted
    total: int | None = None
    done: int = 0
    chunks: int = 0
    counts: str = "{}"
    errors: str = "[]"  # JSON list of {"uri", "kind", "reason"}
    message: str = ""
    owner: str = ""  # the API process running it (its lease)
    heartbeat_at: datetime | None = None  # renewed while the owner lives
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class ServerSecretRow(SQLModel, table=True):
    """Random secrets every replica shares (made on first use): the keys that sign sessions
    and map internal ids to public ones. Never shown."""

    __tablename__ = "server_secrets"

    name: str = Field(primary_key=True)
    value: str
    created_at: datetime = Field(default_factory=utcnow)
