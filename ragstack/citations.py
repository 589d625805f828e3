"""Citations resolved to exact text and checked for support.

Each ``[n]`` in an answer resolves to source ``n``'s chunk id, document URI and title, page,
and the character span (in the document's text) of the kept sentence that best supports the
citing sentence. A citing sentence (markers removed) is supported by a source when the
embedding cosine to one of the source's sentences reaches ``SEMANTIC_MIN``, or when the
share of its content words (stemmed, stopwords out) found in the source reaches
``LEXICAL_MIN``. Unsupported citations are flagged in the response, never silently kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexes.analysis import Analyzer
from ragstack.compression import Context, ContextSource, EmbedFn
from ragstack.generation.prompt import _MARKER, is_abstention, parse_citations

SEMANTIC_MIN = 0.6
LEXICAL_MIN = 0.6


@dataclass(frozen=True)
class Citation:
    number: int
    chunk_id: int
    document_id: int
    uri: str
    title: str
    page: int | None
    char_start: int  # of the supporting sentence in the document's text
    char_end: int
    quote: str
    supported: bool
    semantic: float
    lexical: float
    ocr: bool = False  # the quoted text was read by OCR: check it against the page


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    start: int
    end: int
    citations: tuple[Citation, ...]
    invalid_numbers: tuple[int, ...]  # cited numbers with no such source

    @property
    def supported(self) -> bool:
        return bool(self.citations) and all(c.supported for c in self.citations)


@dataclass(frozen=True)
class Verification:
    sentences: tuple[AnswerSentence, ...]
    abstained: bool

    @property
    def citations(self) -> list[Citation]:
        return [c for s in self.sentences for c in s.citations]

    @property
    def unsupported(self) -> int:
        return sum(1 for c in self.citations if not c.supported) + sum(
            len(s.invalid_numbers) for s in self.sentences
        )

    @property
    def uncited(self) -> int:
        """Sentences that state something without citing anything."""
        return sum(1 for s in self.sentences if not s.citations and not s.invalid_numbers)


class CitationVerifier:
    def __init__(self, embed: EmbedFn) -> None:
        self.embed = embed
        self.analyzer = Analyzer()

    def verify(self, answer: str, context: Context) -> Verification:
        if is_abstention(answer):
            return Verification((), True)
        sources = {s.number: s for s in context.sources}
        parsed = parse_citations(answer, len(context.sources))
        claims = [" ".join(_MARKER.sub(" ", p.text).split()) for p in parsed]
        cited = sorted({n for p in parsed for n in p.numbers})
        texts = [s.text for n in cited for s in sources[n].sentences]
        vectors = self.embed([*claims, *texts]) if claims else np.zeros((0, 1), np.float32)
        claim_vecs, sentence_vecs = vectors[: len(claims)], vectors[len(claims) :]
        offsets: dict[int, tuple[int, int]] = {}
        pos = 0
        for n in cited:
            offsets[n] = (pos, pos + len(sources[n].sentences))
            pos += len(sources[n].sentences)
        out = []
        for p, claim, cvec in zip(parsed, claims, claim_vecs, strict=True):
            words = set(self.analyzer(claim))
            citations = []
            for n in p.numbers:
                a, b = offsets[n]
                citations.append(self._check(n, sources[n], words, cvec @ sentence_vecs[a:b].T))
            out.append(AnswerSentence(p.text, p.span[0], p.span[1], tuple(citations), p.invalid))
        return Verification(tuple(out), False)

    def _check(
        self, number: int, source: ContextSource, words: set[str], cosines: Sequence[float]
    ) -> Citation:
        best = int(np.argmax(cosines)) if len(cosines) else 0
        semantic = float(cosines[best]) if len(cosines) else 0.0
        found = set(self.analyzer(source.text))
        lexical = len(words & found) / len(words) if words else 0.0
        sentence = source.sentences[best]
        hit = source.hit
        return Citation(
            number=number,
            chunk_id=hit.chunk_id,
            document_id=hit.document_id,
            uri=hit.uri,
            title=hit.title,
            page=hit.page,
            char_start=sentence.char_start,
            char_end=sentence.char_end,
            quote=sentence.text,
            supported=semantic >= SEMANTIC_MIN or lexical >= LEXICAL_MIN,
            semantic=round(semantic, 4),
            lexical=round(lexical, 4),
            ocr=hit.ocr,
        )
