"""Request and response bodies of the API (what the OpenAPI document shows)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragstack.search import Filters


class ErrorBody(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no collection named 'handbook'"])
    status: int = Field(examples=[404])


class ErrorOut(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut, "description": d}
    for s, d in {
        400: "Invalid input",
        401: "Missing, invalid or revoked API key",
        403: "The key's role does not allow this",
        404: "Not found (or not visible to this key)",
        409: "Conflict: it already exists, or the collection is pinned to another embedder",
        413: "Request body too large",
        415: "Unsupported document type",
        422: "Request does not match the schema",
        429: "Rate limit exceeded (per key, or failed authentications per client address); "
        "see Retry-After",
        503: "A dependency (generator, database) is unavailable, or every answer slot of the "
        "generator is taken (code busy; see Retry-After)",
        504: "No response within the request timeout",
    }.items()
}


class FilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(default_factory=list, max_length=50)
    uri_prefix: str | None = Field(None, max_length=2048)
    mime_types: list[str] = Field(default_factory=list, max_length=50)
    meta: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=50)
    exclude_instruction_like: bool = False

    def to_filters(self) -> Filters:
        return Filters.of(
            self.meta,
            sources=tuple(self.sources),
            uri_prefix=self.uri_prefix,
            mime_types=tuple(self.mime_types),
            exclude_instruction_like=self.exclude_instruction_like,
        )


class SearchIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"collection": "handbook", "query": "vacation days"}]},
    )

    collection: str = Field(min_length=1, max_length=128)
    query: str = Field(min_length=1, max_length=4096)
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    top_k: int = Field(10, ge=1, le=100)
    filters: FilterIn | None = None
    rerank: bool | None = None


class HitOut(BaseModel):
    rank: int
    score: float
    chunk_id: str = Field(description="The chunk's public id (`c_` + 16 hex digits).")
    document_id: str = Field(description="Its document's public id (`d_` + 16 hex digits).")
    uri: str
    title: str
    section: str
    page: int | None
    char_start: int
    char_end: int
    instruction_like: bool
    text: str
    ocr: bool = Field(False, description="The text was read by OCR (an image or a scanned page).")


class SearchOut(BaseModel):
    collection: str
    query: str
    mode: str
    hits: list[HitOut]
    timings_ms: dict[str, float] = Field(
        description="Per stage for admin keys; `total_ms` alone for everyone else."
    )


class TurnIn(BaseModel):
    """An earlier message of the conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=16384)


class AnswerIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"collection": "handbook", "question": "How many vacation days?"}]
        },
    )

    collection: str = Field(min_length=1, max_length=128)
    question: str = Field(min_length=1, max_length=4096)
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    generator: Literal["extractive", "local", "remote"] | None = None
    max_tokens: int | None = Field(None, ge=1, le=4096)
    use_cache: bool = True
    rerank: bool | None = None
    filters: FilterIn | None = None
    stream: bool = Field(False, description="Server-Sent Events: `delta` events, then `answer`.")
    history: list[TurnIn] = Field(
        default_factory=list,
        max_length=100,
        description='The conversation before `question`, oldest first: a follow-up ("and for '
        "contractors?\") is searched as the standalone question it stands for (the answer's "
        "`query`). The last 20 turns are read.",
    )


class CitationOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    number: int
    chunk_id: str
    document_id: str
    uri: str
    title: str
    supported: bool


class AnswerOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    answer: str
    query: str = Field(description="What was searched: the question, standalone, PII-redacted.")
    abstained: bool
    generator: str
    model: str
    citations: list[CitationOut]
    unsupported_citations: int
    sources: list[dict[str, Any]]
    usage: dict[str, Any]
    cached: bool
    timings_ms: dict[str, float] = Field(
        description="Per stage for admin keys; `total_ms` alone for everyone else."
    )


class CollectionOut(BaseModel):
    name: str
    documents: int = Field(description="Documents this key may read.")
    embedder: str
    vector_backend: str
    generation: int | None = Field(
        description="Moves with every change; shown only to callers who may read every "
        "document of the collection (it would move with hidden documents' changes too)."
    )
    tenant: str | None
    created_at: str


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", examples=["handbook"])
    public: bool = False
    allow: list[str] = Field(default_factory=list, max_length=100)
    vector_backend: Literal["hnsw", "ivfpq", "exact"] | None = None
    pii_mode: str | None = Field(None, max_length=32)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: str = Field(pattern=r"^user:\S(.{0,190}\S)?$", examples=["user:alice"])
    groups: list[Annotated[str, Field(pattern=r"^group:\S(.{0,190}\S)?$")]] = Field(
        default_factory=list, max_length=100, examples=[["group:eng"]]
    )
    role: Literal["reader", "writer", "admin"] = "reader"
    name: str = Field("", max_length=200)
    tenant: str | None = Field(
        None,
        pattern=r"^\S(.{0,126}\S)?$",
        description="Confine the key to this tenant (an admin with a tenant: its own, the "
        "default). None: tenant-less documents only, or every tenant for an admin.",
    )


class KeyOut(BaseModel):
    key_id: str
    name: str
    principal: str
    groups: list[str]
    role: str
    tenant: str | None
    created_at: str
    revoked_at: str | None


class NewKeyOut(BaseModel):
    key: KeyOut
    secret: str = Field(description="The full API key. Shown once; only its hash is stored.")


class AuditOut(BaseModel):
    id: int
    at: str
    key_id: str | None
    tenant: str | None
    principals: list[str]
    route: str
    action: str
    collection: str | None
    query: str | None
    chunk_ids: list[str] = Field(description="Public ids of the chunks the response held.")
    status: int
    latency_ms: float
    detail: dict[str, Any]
    request_id: str | None = Field(
        description="The request's id (its `X-Request-ID` and log lines); none in older rows."
    )


class DocumentOut(BaseModel):
    id: str = Field(description="The document's public id (`d_` + 16 hex digits).")
    uri: str
    title: str
    mime: str
    source: str
    chunk_count: int
    size_bytes: int
    pii_counts: dict[str, int]
    updated_at: str


class DocumentAclIn(BaseModel):
    """Who may read a document: ``allow`` (principals), or ``public``."""

    model_config = ConfigDict(extra="forbid")

    allow: list[Annotated[str, Field(pattern=r"^(user|group):\S(.{0,190}\S)?$")]] = Field(
        default_factory=list, max_length=100, examples=[["group:eng"]]
    )
    public: bool = False


class ChunkOut(BaseModel):
    id: str
    ordinal: int
    text: str
    section: str
    page: int | None
    char_start: int
    char_end: int
    instruction_like: bool
    ocr: bool = False


class DocumentDetailOut(DocumentOut):
    chunks: list[ChunkOut]


class ContentPart(BaseModel):
    """A part of a message's content: ``{"type": "text", "text": ...}`` is read; a
    ``refusal`` part is skipped; any other type (images, audio, files) is refused."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(max_length=64)
    text: str | None = None


class ChatMessageIn(BaseModel):
    """An OpenAI chat message: ``content`` is a string or a list of parts. Other fields
    clients send (``name``, ``tool_calls``, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatIn(BaseModel):
    """OpenAI chat-completions request; ``model`` names the collection to answer from.
    Sampling fields other clients send (temperature, top_p, tools, ...) are accepted and
    ignored. The size of a request is bounded by ``RAGSTACK_API_MAX_BODY_BYTES``."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"model": "handbook", "messages": [{"role": "user", "content": "Vacation?"}]}
            ]
        },
    )

    model: str = Field(min_length=1, max_length=128)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    n: int | None = Field(None, ge=1, le=1, description="One choice only.")


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"]


class ChatUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatOut(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    ragstack: dict[str, Any] = Field(
        description="The answer's citations, sources, the standalone query searched, "
        "abstention and timings (the text also carries the numbered references). Streams "
        "carry it on the chunk with the finish_reason."
    )


class ModelOut(BaseModel):
    id: str = Field(description="A collection this key can read.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragstack"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class JobOut(BaseModel):
    id: str
    collection: str
    status: Literal["queued", "running", "completed", "failed", "interrupted"]
    sources: list[str]
    progress: dict[str, int | None]
    counts: dict[str, int]
    errors: list[dict[str, str]] = Field(description="Per-file problems: uri, kind, reason.")
    message: str
    created_at: str
    finished_at: str | None
