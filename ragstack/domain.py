"""Domain types passed between the service layer, the store and the front ends."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

Principal = str  # "user:alice" | "group:eng" | "public"
PUBLIC = "public"
MetaValue = str | int | float | bool


def check_principal(value: str) -> str:
    kind, _, name = value.partition(":")
    if value == PUBLIC or (kind in ("user", "group") and name and name.strip() == name):
        return value
    from ragstack.errors import InputError

    raise InputError(f"not a principal: {value!r} (expected user:NAME, group:NAME or public)")


@dataclass(frozen=True)
class CollectionInfo:
    id: int
    name: str
    tenant: str | None
    owner: Principal
    embedder_id: str
    dim: int
    vector_backend: str
    pii_mode: str
    pii_ner: bool
    default_acl: tuple[Principal, ...]
    generation: int  # bumped by every committed change: caches and permitted sets follow it
    created_at: datetime
    index_generation: int = 0  # bumped when chunks change: readers reopen indexes on it
    dense_name: str = "dense"  # the dense index of the pinned embedder (a live re-embed moves it)


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk ready to be written: text already redacted, vector already computed."""

    ordinal: int
    text: str
    text_hash: str
    section: str
    page: int | None
    char_start: int
    char_end: int
    token_count: int
    instruction_like: bool
    embedding: npt.NDArray[np.float32]
    ocr: bool = False  # read by OCR from an image or a scanned page


@dataclass(frozen=True)
class DocumentDraft:
    source: str
    uri: str
    version: str
    title: str
    mime: str
    meta: dict[str, MetaValue]
    tenant: str | None
    principals: frozenset[Principal]
    text: str
    size_bytes: int
    pii_counts: dict[str, int]
    chunks: list[ChunkDraft] = field(default_factory=list)
    namespace: str = ""  # "" for operator ingests; an API caller's own otherwise


@dataclass(frozen=True)
class DocumentState:
    """What decides whether a source item changed: its content version, and its ACL."""

    id: int
    version: str
    source: str
    tenant: str | None
    principals: frozenset[Principal]

    def readable_by(self, principals: Iterable[str], tenant: str | None) -> bool:
        """The rule of the SQL filters (``search._permitted_documents``), for one document:
        ``public`` or a shared principal, and (with a ``tenant``) its tenant or none."""
        if tenant is not None and self.tenant not in (None, tenant):
            return False
        return bool(self.principals & ({PUBLIC} | set(principals)))


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    collection: str
    source: str
    uri: str
    version: str
    title: str
    mime: str
    chunk_count: int
    size_bytes: int
    principals: tuple[Principal, ...]
    pii_counts: dict[str, int]
    updated_at: datetime
    namespace: str = ""
    tenant: str | None = None


@dataclass(frozen=True)
class WriteResult:
    document_id: int
    added: npt.NDArray[np.int64]
    removed: npt.NDArray[np.int64]


@dataclass(frozen=True)
class ChunkInfo:
    id: int
    document_id: int
    ordinal: int
    text: str
    section: str
    page: int | None
    char_start: int
    char_end: int
    token_count: int
    instruction_like: bool
    ocr: bool = False
