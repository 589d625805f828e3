"""Answer generation behind one streaming ``Generator`` Protocol.

Backends: ``LlamaCppGenerator`` (a local GGUF, SmolLM2-135M-Instruct by default) and
``OpenAICompatibleGenerator`` (any OpenAI-compatible chat-completions server). Prompts number
the sources [1]..[n] and fence their text as data (``prompt``); ``parse_citations`` reads the
``[n]`` markers back out of an answer.
"""

from ragstack.generation.base import (
    Cancel,
    Completion,
    EventStream,
    GenerationEvent,
    Generator,
    Source,
    TextDelta,
    TokenCounter,
    Usage,
    collect,
)
from ragstack.generation.local import LlamaCppGenerator, packaged_smollm2_path
from ragstack.generation.prompt import (
    CITATION_MARKER,
    NOT_SUPPORTED,
    ChatMessage,
    CitedSentence,
    build_messages,
    is_abstention,
    parse_citations,
)
from ragstack.generation.remote import OpenAICompatibleGenerator
from ragstack.generation.tokens import approximate_token_count, default_token_counter

__all__ = [
    "CITATION_MARKER",
    "NOT_SUPPORTED",
    "Cancel",
    "ChatMessage",
    "CitedSentence",
    "Completion",
    "EventStream",
    "GenerationEvent",
    "Generator",
    "LlamaCppGenerator",
    "OpenAICompatibleGenerator",
    "Source",
    "TextDelta",
    "TokenCounter",
    "Usage",
    "approximate_token_count",
    "build_messages",
    "collect",
    "default_token_counter",
    "is_abstention",
    "packaged_smollm2_path",
    "parse_citations",
]
