"""All settings in one place: ``RAGSTACK_*`` environment variables, or the optional file
``ragstack.env`` in the working directory (``KEY=value`` lines; the environment wins).

Nothing else reads the environment. Every field has a default that runs on one laptop with
no services; ``docs_table()`` renders this class as the settings table of the README (a test
keeps the two in step).
"""

from __future__ import annotations

import getpass
import ipaddress
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PiiMode = Literal["mask", "pseudonym", "off"]
VectorBackend = Literal["hnsw", "ivfpq", "exact"]
EmbedderBackend = Literal["int8", "int8-mixed", "sentence-transformers", "onnx-int8", "hashing"]
RerankerBackend = Literal["torch", "onnx-int8"]
GeneratorName = Literal["extractive", "local", "remote"]
OcrModeName = Literal["auto", "always", "off"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["text", "json"]
OtelExporter = Literal["none", "console", "otlp"]


def _default_principal() -> str:
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "user:local"


class Settings(BaseSettings):
    """ragstack's configuration (environment prefix ``RAGSTACK_``)."""

    model_config = SettingsConfigDict(
        env_prefix="RAGSTACK_",
        env_file="ragstack.env",
        env_file_encoding="utf-8",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(
        Path("data"), description="Where the SQLite database and index files live."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite at <data_dir>/ragstack.db."
    )
    principal: str = Field(
        default_factory=_default_principal,
        description="Who the CLI acts as (`user:NAME`); owns what it ingests by default.",
    )
    embedder: EmbedderBackend = Field(
        "int8-mixed",
        description=(
            "Embedder of new collections (each collection keeps the one it was made with): "
            "`int8-mixed` (MiniLM as a built-in int8 ONNX graph, the few outlier channels of "
            "its LayerNorm-fed layers in float: no torch, ~2x torch's ingest speed, cosine ~0.999 "
            "to it, nDCG within 0.005 of it), `int8` (all channels int8: ~13% faster, cosine "
            "~0.997; SciFact dense nDCG@10 0.0098 below torch), `sentence-transformers` "
            "(MiniLM on torch; the `torch` extra), `onnx-int8` (an int8 export made once with "
            "torch under <data_dir>/models) or `hashing` (fast fake, tests)."
        ),
    )
    embedders_loaded: int = Field(
        3,
        ge=1,
        le=64,
        description="Embedding models a process keeps loaded at once (the default always "
        "among them); a collection pinned to another loads its own on first use.",
    )
    embedder_model_path: Path | None = Field(
        None,
        description="Local sentence-transformers model dir; default: packaged all-MiniLM-L6-v2.",
    )
    onnx_queries: bool = Field(
        True,
        description="With `sentence-transformers`, embed queries (calls of up to 4 texts) with "
        "the built-in fp32 ONNX graph of the same weights (same vectors; several times less "
        "overhead per call; no export).",
    )
    onnx_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Threads per onnxruntime call (query path, onnx-int8 embedder, reranker); "
        "none: every core. The built-in int8 embedder runs a call's batches as two streams of "
        "half of them each. 1 serves concurrent requests better than it serves one alone.",
    )
    embed_batch_size: int = Field(
        16, ge=1, le=4096, description="Chunks per model batch (16 measured fastest on CPU)."
    )
    vector_backend: VectorBackend = Field("hnsw", description="Dense index for new collections.")
    chunk_max_tokens: int = Field(
        256, ge=32, le=8192, description="Chunk size bound in the embedder's own tokens."
    )
    chunk_overlap_tokens: int = Field(
        32,
        ge=0,
        le=1024,
        description="Tokens of the previous chunk repeated at the start of the next.",
    )
    max_file_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="Larger source files are rejected with a clear message."
    )
    keep_uploads: bool = Field(
        False,
        description="Keep the original files uploaded through the API after they are ingested "
        "(under <data_dir>/uploads/kept; they leave with their document or collection). Off: "
        "an upload's bytes are deleted once its job ends.",
    )
    max_unpacked_bytes: int | None = Field(
        None,
        ge=1,
        description="Largest total a zip-based document (DOCX, PPTX, XLSX, ODT, EPUB) may "
        "declare unpacked; larger ones, or members inflating over 200x, are `too_large` "
        "(zip bombs). None: 5 x RAGSTACK_MAX_FILE_BYTES.",
    )
    fetch_allow: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Hosts (`wiki.corp`, `*.corp.example`) and networks (`10.0.0.0/8`) that "
        "URL ingests may fetch although not public (comma-separated or a JSON list). Every "
        "other loopback, private, link-local or reserved address is refused.",
    )
    cli_fetch_private: bool = Field(
        True,
        description="CLI ingests (the operator's own command) may fetch any address; API "
        "ingests never fetch a non-public one unless `RAGSTACK_FETCH_ALLOW` allows it.",
    )
    fetch_timeout_s: float = Field(
        10.0, gt=0, le=600, description="URL ingests: seconds to connect, and between bytes."
    )
    pii_mode: PiiMode = Field("mask", description="Default redaction mode for new collections.")
    pii_ner: bool = Field(
        False,
        description=(
            "Redact person names and locations too (spaCy NER) in new collections: "
            "about 3x slower ingest and it alters eponyms, so opt-in."
        ),
    )
    ocr: OcrModeName = Field(
        "auto",
        description="OCR for new collections (`ragstack ingest --ocr` sets a collection's): "
        "`auto` reads image files, PDF pages without a text layer and pictures in PDF, DOCX "
        "and PPTX files; `always` reads every PDF page by OCR too; `off` reads none. Needs "
        "Tesseract (`scripts/setup.sh` installs it).",
    )
    ocr_languages: str = Field(
        "eng",
        pattern=r"^[a-z][a-z_]*(\+[a-z][a-z_]*)*$",
        description="Tesseract languages, `+`-joined (`eng+deu`); each needs its Debian pack "
        "`tesseract-ocr-<lang>`. Text in a script none of them reads is reported as "
        "`ocr_language_missing`.",
    )
    ocr_dpi: int = Field(300, ge=72, le=600, description="Resolution PDF pages are read at.")
    ocr_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="OCR of one page or image gives up after this."
    )
    ocr_max_pixels: int = Field(
        100_000_000,
        ge=1_000_000,
        description="Larger images are refused (decompression bombs); large ones are scaled "
        "down before OCR.",
    )
    ocr_workers: int = Field(
        2,
        ge=1,
        le=64,
        description="Pages (and documents) read by OCR at once (one Tesseract thread each).",
    )
    index_save_interval_s: float = Field(
        30.0, ge=0, description="During an ingest, save indexes at least this often (seconds)."
    )
    reembed_batch: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Chunks per committed batch of a live re-embed (`ragstack reembed`): what a "
        "kill costs at most.",
    )
    reembed_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="Niceness of a live re-embed's thread (and the model threads it starts): on "
        "a host it shares only with serving, 10 gives searches the CPU first; on a busy shared "
        "host it starves the re-embed (measured: 2.1x the plain re-embed time at 10, 1.4x at 0). "
        "0 keeps the process's own.",
    )
    reembed_grace_s: float = Field(
        2.0,
        ge=0,
        le=600,
        description="After a live re-embed switches a collection, wait this long before dropping "
        "the old dense index (requests that read the collection just before still finish).",
    )
    adapt_adopt: bool = Field(
        False,
        description="`ragstack adapt` adopts the model it trained (by live re-embed) when its "
        "gate passes. Off: the gate agreed with labelled nDCG@10 in 2 of 4 SciFact and PubMedQA "
        "runs (see the README), so by default it writes the model and reports its gate only.",
    )
    adapt_margin: float = Field(
        0.005,
        ge=0,
        le=1,
        description="`ragstack adapt`'s gate: the rise in MRR@10 (queries of a pair kind it "
        "did not train on, from documents it never saw) needed to adopt the adapted model.",
    )
    adapt_max_pairs: int = Field(
        1000,
        ge=32,
        le=1_000_000,
        description="`ragstack adapt` trains one epoch on a sample of at most this many pairs "
        "(measured: 960 SciFact pairs trained in 848 s on one thread of a busy shared 2-core "
        "host).",
    )
    api_rate_per_s: float = Field(
        20.0, gt=0, le=100_000, description="API requests per second per key (token bucket)."
    )
    api_burst: int = Field(40, ge=1, le=100_000, description="API requests a key may burst.")
    api_max_body_bytes: int = Field(
        1 << 20, ge=1024, description="Largest API request body (bytes); uploads excepted."
    )
    api_max_upload_bytes: int = Field(
        100 << 20, ge=1024, description="Largest document upload request (bytes)."
    )
    api_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="API requests not answered by then get a 504."
    )
    api_cors_origins: tuple[str, ...] = Field(
        (), description="Origins allowed by CORS (none: CORS off)."
    )
    api_trusted_proxies: tuple[str, ...] = Field(
        (),
        description="Addresses or CIDR networks of the reverse proxies in front of the API: "
        "from them, `X-Forwarded-For` names the client (failed-login limits) and "
        "`X-Forwarded-Proto` says https (`Secure` cookies). None: the peer is the client.",
    )
    api_auth_failures_burst: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Failed authentications (bad API key, refused login) a client address may "
        "make in a row; then 429 until its allowance refills. Per process.",
    )
    api_auth_failures_per_s: float = Field(
        0.1, gt=0, le=100_000, description="How fast that allowance refills (per second)."
    )
    api_session_ttl_s: float = Field(
        8 * 3600.0,
        ge=60,
        le=30 * 86400,
        description="Lifetime of a page session, the admin page's or the chat page's (its key "
        "is re-checked on every request).",
    )
    api_answers_local: int = Field(
        1, ge=1, le=1024, description="Concurrent `local` answer generations per API process."
    )
    api_answers_remote: int = Field(
        8, ge=1, le=1024, description="Concurrent `remote` answer generations per API process."
    )
    api_answers_extractive: int = Field(
        4, ge=1, le=1024, description="Concurrent `extractive` answers per API process."
    )
    api_answer_queue: int = Field(
        4,
        ge=0,
        le=100_000,
        description="Answers that may wait for a generator's slot; more get a 503 (`busy`, "
        "with Retry-After).",
    )
    reranker_path: Path | None = Field(
        None,
        description="Local cross-encoder model dir (e.g. one `python -m evals.train_reranker` "
        "writes); none: no reranking.",
    )
    reranker_backend: RerankerBackend = Field(
        "onnx-int8",
        description="`onnx-int8` (exported once under <data_dir>/models; several times faster "
        "on CPU) or `torch` (sentence-transformers CrossEncoder).",
    )
    reranker_max_length: int | None = Field(
        None,
        ge=16,
        le=8192,
        description="Tokens of query + passage the reranker reads (none: the length it was "
        "trained at, from the `training.json` beside it, else 256).",
    )
    rerank_depth: int = Field(
        20, ge=2, le=200, description="First-stage hits the reranker reorders."
    )
    rerank_default: bool = Field(
        False, description="Rerank searches and answers unless a request says otherwise."
    )
    generator: GeneratorName = Field(
        "extractive",
        description="Default answer generator: `extractive` (no model), `local` (llama.cpp) "
        "or `remote` (an OpenAI-compatible server).",
    )
    local_model_path: Path | None = Field(
        None, description="GGUF file for `local`; default: packaged SmolLM2-135M-Instruct."
    )
    local_threads: int | None = Field(
        None, ge=1, description="CPU threads for `local` (default: llama.cpp's choice)."
    )
    remote_url: str | None = Field(
        None, description="Base URL of the OpenAI-compatible server for `remote`."
    )
    remote_model: str = Field("default", description="Model name sent to the remote server.")
    remote_api_key: SecretStr | None = Field(
        None, description="Bearer key for the remote server (never logged)."
    )
    generator_timeout_s: float = Field(
        60.0, gt=0, description="Remote generator: seconds to wait for the next token."
    )
    extractive_min_score: float = Field(
        0.75,
        ge=0,
        le=2,
        description="Extractive: a sentence needs this score (cosine + lexical share) to be "
        "quoted; below it the answer abstains (see `python -m evals.calibrate_extractive`).",
    )
    extractive_relative_min: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Extractive: further sentences need this fraction of the best one's score.",
    )
    extractive_part_min_score: float = Field(
        0.7,
        ge=0,
        le=2,
        description="Extractive, multi-part questions: the score a sentence needs to answer one "
        "part; below it the answer says the sources do not answer that part (`python -m "
        "evals.answers --multipart`: 0.7 covered 0.86 of the parts at 0.94 citation precision "
        "and declared 0.83 of the unanswerable parts).",
    )
    answer_chunks: int = Field(
        8, ge=1, le=50, description="Chunks retrieved (and reranked) to answer from."
    )
    context_tokens: int = Field(
        1024,
        ge=64,
        le=32768,
        description="Token budget of the compressed context, in the generator's own tokens.",
    )
    answer_max_tokens: int = Field(256, ge=16, le=4096, description="Longest answer generated.")
    cache_enabled: bool = Field(True, description="Serve repeated and paraphrased questions.")
    cache_threshold: float = Field(
        0.9, gt=0, le=1, description="Cosine a cached question must reach (then the guard runs)."
    )
    log_level: LogLevel | None = Field(
        None,
        description="Log level (`--log-level` wins); none: `info` for `ragstack serve`, "
        "`warning` for other commands. Logs go to stderr.",
    )
    log_format: LogFormat = Field(
        "text",
        description="`text` (readable lines) or `json` (one JSON object per line: time, level, "
        "logger, message, request_id and the record's fields).",
    )
    otel_exporter: OtelExporter = Field(
        "none",
        description="Export OpenTelemetry spans of each search and answer stage: `console`, "
        "or `otlp` (the standard `OTEL_EXPORTER_OTLP_*` variables say where); needs the `otel` "
        "extra. `none`: spans go to whatever tracer provider the host process installed.",
    )

    @field_validator("principal")
    @classmethod
    def _principal_shape(cls, value: str) -> str:
        kind, _, name = value.partition(":")
        if kind not in ("user", "group") or not name:
            raise ValueError("principal must look like 'user:NAME' or 'group:NAME'")
        return value

    @field_validator("api_trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR network: {item!r}") from None
        return value

    @field_validator("fetch_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(p.strip() for p in text.replace(",", " ").split() if p.strip())
        return value

    @model_validator(mode="after")
    def _overlap_below_half(self) -> Settings:
        if self.chunk_overlap_tokens * 2 > self.chunk_max_tokens:
            raise ValueError("chunk_overlap_tokens must be at most half of chunk_max_tokens")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ragstack.db').resolve()}"

    @property
    def unpacked_limit(self) -> int:
        return self.max_unpacked_bytes or 5 * self.max_file_bytes

    @property
    def collections_dir(self) -> Path:
        return self.data_dir / "collections"


def docs_table() -> str:
    """The settings as a Markdown table (environment variable, default, meaning)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "(computed)" if field.default_factory else field.default
        rows.append(f"| `RAGSTACK_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(rows)
