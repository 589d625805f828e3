"""The answer path: retrieve -> compress -> generate (streaming) -> verify citations, with the
semantic cache in front. ``Ragstack.answer`` drives it; this module holds its parts and its
request and response types.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ragstack.citations import AnswerSentence, Citation
from ragstack.compression import F32, Context
from ragstack.conversation import Turn
from ragstack.embedding import Embedder
from ragstack.generation.base import Cancel, TextDelta, Usage
from ragstack.search import Filters, Mode


class MemoEmbed:
    """The embedder with a small LRU of text -> vector, shared by compression, the extractive
    generator and citation checks (they embed the same sentences within one answer)."""

    def __init__(self, embedder: Embedder, size: int = 8192) -> None:
        self.embedder = embedder
        self.size = size
        self._memo: OrderedDict[str, F32] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._memo.clear()

    def __call__(self, texts: Sequence[str]) -> F32:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            vectors = self.embedder.embed(missing)
            with self._lock:
                for text, vec in zip(missing, vectors, strict=True):
                    self._memo[text] = vec
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
        with self._lock:
            out = []
            for t in texts:
                vec = self._memo.get(t)
                if vec is None:  # evicted meanwhile by another thread
                    vec = self.embedder.embed([t])[0]
                else:
                    self._memo.move_to_end(t)
                out.append(vec)
        if not out:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack(out).astype(np.float32, copy=False)


@dataclass(frozen=True)
class AnswerRequest:
    collection: str
    question: str
    principals: tuple[str, ...]
    tenant: str | None = None
    mode: Mode = "hybrid"
    generator: str | None = None  # default: the configured one
    filters: Filters = field(default_factory=Filters)
    max_tokens: int | None = None
    use_cache: bool = True
    rerank: bool | None = None  # default RAGSTACK_RERANK_DEFAULT
    # set from another thread to stop the answer (checked between stages and tokens; the
    # generator stops too): the stream then raises AbortedError
    cancel: Cancel | None = field(default=None, compare=False)
    # The conversation before ``question`` (oldest first): a follow-up is answered as the
    # standalone question it stands for (``ragstack.conversation``).
    history: tuple[Turn, ...] = ()

    def cache_params(
        self, generator: str, model: str, fusion: str, reranker: str
    ) -> dict[str, object]:
        """What must match for a cached answer to be reused (besides the caller scope);
        ``reranker`` is the identity of the reranker that runs ("" when none does)."""
        return {
            "mode": self.mode,
            "generator": generator,
            "model": model,
            "filters": repr(self.filters),
            "max_tokens": self.max_tokens,
            "fusion": fusion,
            "reranker": reranker,
        }


@dataclass
class AnswerResponse:
    answer: str
    abstained: bool
    generator: str
    model: str
    sentences: list[AnswerSentence]
    sources: list[dict[str, Any]]
    context_tokens_before: int
    context_tokens_after: int
    usage: Usage
    cached: bool = False
    cache: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    parts: list[dict[str, Any]] = field(default_factory=list)  # of a multi-part question
    query: str = ""  # what was searched: the question, standalone and PII-redacted

    @property
    def citations(self) -> list[Citation]:
        return [c for s in self.sentences for c in s.citations]

    @property
    def unsupported_citations(self) -> int:
        return sum(1 for c in self.citations if not c.supported) + sum(
            len(s.invalid_numbers) for s in self.sentences
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "query": self.query,
            "abstained": self.abstained,
            "generator": self.generator,
            "model": self.model,
            "citations": [asdict(c) for c in self.citations],
            "unsupported_citations": self.unsupported_citations,
            "sentences": [
                {
                    "text": s.text,
                    "start": s.start,
                    "end": s.end,
                    "citations": [c.number for c in s.citations],
                    "invalid_citations": list(s.invalid_numbers),
                    "supported": s.supported,
                }
                for s in self.sentences
            ],
            "sources": self.sources,
            "context_tokens": {
                "before": self.context_tokens_before,
                "after": self.context_tokens_after,
            },
            "usage": asdict(self.usage),
            "cached": self.cached,
            "cache": self.cache,
            "parts": self.parts,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerResponse:
        """A cached response back (citations as stored: verified when first answered)."""
        by_number: dict[int, Citation] = {}
        for c in data["citations"]:
            by_number.setdefault(c["number"], Citation(**c))
        sentences = [
            AnswerSentence(
                s["text"],
                s["start"],
                s["end"],
                tuple(by_number[n] for n in s["citations"]),
                tuple(s["invalid_citations"]),
            )
            for s in data["sentences"]
        ]
        return cls(
            answer=data["answer"],
            abstained=data["abstained"],
            generator=data["generator"],
            model=data["model"],
            sentences=sentences,
            sources=data["sources"],
            context_tokens_before=data["context_tokens"]["before"],
            context_tokens_after=data["context_tokens"]["after"],
            usage=Usage(**data["usage"]),
            parts=data.get("parts", []),
            query=data.get("query", ""),
        )


AnswerEvent = TextDelta | AnswerResponse


def source_dicts(context: Context) -> list[dict[str, Any]]:
    return [
        {
            "number": s.number,
            "chunk_id": s.hit.chunk_id,
            "document_id": s.hit.document_id,
            "uri": s.hit.uri,
            "title": s.hit.title,
            "section": s.hit.section,
            "page": s.hit.page,
            "instruction_like": s.hit.instruction_like,
            "ocr": s.hit.ocr,
            "text": s.text,
            "sentences": [
                {"text": x.text, "char_start": x.char_start, "char_end": x.char_end}
                for x in s.sentences
            ],
        }
        for s in context.sources
    ]
