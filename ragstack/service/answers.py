"""Answers: retrieve, compress, generate, verify citations, cache."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import trace

from ragstack.answering import AnswerEvent, AnswerRequest, AnswerResponse, MemoEmbed, source_dicts
from ragstack.cache import SemanticCache, scope_key
from ragstack.citations import CitationVerifier
from ragstack.compression import Compressor, Context
from ragstack.conversation import (
    MAX_HISTORY_TURNS,
    MAX_TURN_CHARS,
    Condenser,
    Turn,
    standalone,
)
from ragstack.domain import CollectionInfo, check_principal
from ragstack.errors import InputError, RagstackError
from ragstack.generation.base import Generator, Source, TextDelta, Usage, check
from ragstack.generation.prompt import PART_NOT_SUPPORTED
from ragstack.questions import Part, split_question
from ragstack.rerank import reranker_identity
from ragstack.search import Fusion, Hit
from ragstack.service.querying import SearchMixin
from ragstack.tracing import Stages

log = logging.getLogger("ragstack.answers")


class AnswersMixin(SearchMixin):
    def answer(self, request: AnswerRequest) -> Iterator[AnswerEvent]:
        """Stream an answer: text deltas as they are generated, then the ``AnswerResponse``
        (citations resolved and checked, sources, usage, cache outcome, per-stage timings;
        a span per stage when tracing is on)."""
        with Stages("ragstack.answer", collection=request.collection) as clock:
            yield from self._answer(request, clock)

    def _answer(self, request: AnswerRequest, clock: Stages) -> Iterator[AnswerEvent]:
        cancel = request.cancel
        info = self._check_answer_request(request)
        name = request.generator or self.settings.generator
        if name not in ("extractive", "local", "remote") or self.c.generator_for is None:
            raise InputError(f"generator must be extractive, local or remote, not {name!r}")
        generator = self.c.generator_for(name)
        clock.set(generator=name, follow_up=bool(request.history))
        fusion = Fusion.from_json(self._setting(info, "fusion"))
        # cached and logged only redacted; retrieval sees the same text
        question = self._standalone(info, request, generator)
        if request.history:
            clock.lap("condense_ms")
        memo = self._model(info).memo
        cache = SemanticCache(self.store, threshold=self.settings.cache_threshold)
        reranking = self.settings.rerank_default if request.rerank is None else request.rerank
        use_cache = request.use_cache and self.settings.cache_enabled
        view = self._view(info, request.principals, request.tenant, request.filters)
        params = request.cache_params(
            name,
            generator.model_id,
            fusion.to_json(),
            reranker_identity(self.reranker()) if reranking else "",
        )
        scope = scope_key(request.principals, request.tenant, view,
                          {**params, "embedder": info.embedder_id})  # fmt: skip
        check(cancel)
        if use_cache:
            found = cache.lookup(info.id, scope, question, lambda: memo([question])[0])
            clock.lap("cache_ms")
            if found.outcome == "hit" and found.response is not None:
                cached = AnswerResponse.from_dict(found.response)
                cached.cached = True
                cached.query = question
                cached.cache = {"outcome": "hit", "similarity": round(found.similarity, 4)}
                cached.timings_ms = clock.done()
                clock.set(cached=True, abstained=cached.abstained)
                yield TextDelta(cached.answer)
                yield cached
                return
            cache_info: dict[str, Any] = {
                "outcome": found.outcome,
                "similarity": round(found.similarity, 4),
            }
            if found.reason:
                cache_info["guard"] = found.reason
        else:
            cache_info = {"outcome": "off"}
        check(cancel)
        qvec = memo([question])
        clock.lap("embed_ms")
        asked = split_question(question)
        queries = [question] if len(asked) == 1 else [p.query for p in asked]
        with trace.use_span(clock.current(), end_on_exit=False):  # its spans nest under ours
            rankings = [
                self.search(
                    request.collection,
                    query,
                    principals=request.principals,
                    tenant=request.tenant,
                    mode=request.mode,
                    top_k=self.settings.answer_chunks,
                    filters=request.filters,
                    fusion=fusion,
                    query_vector=qvec if query is question else memo([query]),
                    rerank=reranking,
                    vector_model=info.embedder_id,
                ).hits
                for query in queries
            ]
        hits = interleave(rankings, self.settings.answer_chunks)
        clock.lap("search_ms")
        check(cancel)
        multi = queries if len(queries) > 1 else []
        context, sources = self.compress(question, hits, generator, memo, multi)
        clock.lap("compress_ms")
        check(cancel)
        parts: list[str] = []
        usage: Usage | None = None
        max_tokens = request.max_tokens or self.settings.answer_max_tokens
        first_token_ms: float | None = None
        for event in generator.stream(question, sources, max_tokens=max_tokens, cancel=cancel):
            if isinstance(event, TextDelta):
                if first_token_ms is None:
                    first_token_ms = clock.since_start()
                parts.append(event.text)
                yield event
            else:
                usage = event
        clock.lap("generate_ms")
        check(cancel)
        text = "".join(parts).strip()
        verification = CitationVerifier(memo).verify(text, context)
        clock.lap("verify_ms")
        response = AnswerResponse(
            answer=text,
            abstained=verification.abstained or not context.sources,
            generator=name,
            model=generator.model_id,
            sentences=list(verification.sentences),
            sources=source_dicts(context),
            context_tokens_before=context.tokens_before,
            context_tokens_after=context.tokens_after,
            usage=usage or Usage(0, 0, generator.model_id, estimated=True),
            cache=cache_info,
            parts=part_report(asked, text) if len(asked) > 1 else [],
            query=question,
        )
        if use_cache:
            cache.put(info.id, info.generation, scope, question, qvec[0], response.to_dict())
        timings = clock.done()
        if first_token_ms is not None:
            timings["first_token_ms"] = first_token_ms
        response.timings_ms = timings
        clock.set(cached=False, abstained=response.abstained, sources=len(response.sources))
        yield response

    def standalone_question(
        self, collection: str, question: str, history: Sequence[Turn], generator: str | None = None
    ) -> str:
        """The question ``answer`` searches for after ``history``: PII-redacted, and made
        standalone when it is a follow-up (by the generator when it can condense, else by the
        deterministic rewrite). What the evals measure."""
        info = self.store.get_collection(collection)
        name = generator or self.settings.generator
        condenser = self.c.generator_for(name) if self.c.generator_for is not None else None
        request = AnswerRequest(collection, question, ("user:-",), history=tuple(history))
        return self._standalone(info, request, condenser)

    def _standalone(
        self, info: CollectionInfo, request: AnswerRequest, generator: object | None
    ) -> str:
        """The request's question, redacted, and made standalone from its (redacted) history;
        a generator that is a ``Condenser`` is asked first, and a failure of it falls back to
        the deterministic rewrite (logged without any text)."""
        turns = request.history[-MAX_HISTORY_TURNS:]
        texts = [request.question, *(t.text[:MAX_TURN_CHARS] for t in turns)]
        redacted = [r.text for r in self._redactor(info).redact_many(texts)]
        question = redacted[0]
        if not turns:
            return question
        history = [Turn(t.role, text) for t, text in zip(turns, redacted[1:], strict=True)]
        if isinstance(generator, Condenser):
            try:
                return generator.condense(question, history)
            except RagstackError as exc:
                log.warning("condensing a follow-up failed (%s); rewriting it by rule", exc.code)
        return standalone(question, history)

    def compress(
        self,
        question: str,
        hits: Sequence[Hit],
        generator: Generator,
        memo: MemoEmbed | None = None,
        queries: Sequence[str] = (),
    ) -> tuple[Context, list[Source]]:
        """The compressed context ``answer`` gives ``generator`` for these hits (within
        ``context_tokens`` of its own tokens), and the numbered sources it is shown; with
        ``queries`` (the parts of a multi-part question), a sentence counts by the part it
        answers best."""
        memo = memo or self.c.memo
        compressor = Compressor(
            memo, generator.count_tokens, budget_tokens=self.settings.context_tokens
        )
        context = compressor.compress(question, hits, queries)
        sources = [
            Source(s.number, s.hit.title, s.text, s.hit.instruction_like) for s in context.sources
        ]
        return context, sources

    def _check_answer_request(self, request: AnswerRequest) -> CollectionInfo:
        if not request.question.strip():
            raise InputError("the question is empty")
        if len(request.question) > 4096:
            raise InputError("the question is longer than 4,096 characters")
        if not request.principals:
            raise InputError("an answer needs at least one principal to read as")
        if any(t.role not in ("user", "assistant") for t in request.history):
            raise InputError("each earlier turn of a conversation is a user or assistant one")
        for p in request.principals:
            check_principal(p)
        info = self.store.get_collection(request.collection)
        self._model(info)
        return info

    def ask(self, request: AnswerRequest) -> AnswerResponse:
        """``answer`` without the stream."""
        for event in self.answer(request):
            if isinstance(event, AnswerResponse):
                return event
        raise RuntimeError("the answer stream ended without a response")  # pragma: no cover


def interleave(rankings: Sequence[Sequence[Hit]], limit: int) -> list[Hit]:
    """Hits of several rankings (one per part of a question), round robin, each once, at most
    ``limit``: every part gets its best hits into the context."""
    out: list[Hit] = []
    seen: set[int] = set()
    for rank in range(max((len(r) for r in rankings), default=0)):
        for ranking in rankings:
            if rank < len(ranking) and ranking[rank].chunk_id not in seen:
                seen.add(ranking[rank].chunk_id)
                out.append(ranking[rank])
    return out[:limit]


def part_report(parts: Sequence[Part], answer: str) -> list[dict[str, Any]]:
    """Each part of the question and whether the answer answers it (it does unless it says
    the sources do not, in the fixed words every generator is asked to use)."""
    folded = " ".join(answer.lower().split())
    return [
        {"text": p.text,
         "answered": PART_NOT_SUPPORTED.format(part=p.text).lower() not in folded}
        for p in parts
    ]  # fmt: skip
