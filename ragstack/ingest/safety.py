"""Flags chunks whose text reads like instructions to a language model (prompt injection).

Flagged chunks are stored and searchable, marked, and a query policy can exclude them; the
generator always fences retrieved text as data.
"""

from __future__ import annotations

import re

_PATTERNS = [
    r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|any|"
    r"the)\b[^.\n]{0,20}\b(instructions?|prompts?|rules|directions|context)\b",
    r"\byou are now\b[^.\n]{0,60}",
    r"\b(reveal|print|show|repeat|leak)\b[^.\n]{0,30}"
    r"\b(system prompt|hidden prompt|instructions)\b",
    r"\bnew instructions?\s*:",
    r"\b(act|behave|respond) as (if you (are|were)|an?)\b[^.\n]{0,40}"
    r"\b(unrestricted|jailbroken|dan|developer mode)\b",
    r"<\s*/?\s*(system|assistant|im_start|im_end)\s*>",
    r"\bdo not (tell|inform) the user\b",
]
_INSTRUCTION_LIKE = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)


def looks_like_instructions(text: str) -> bool:
    """True when ``text`` contains phrasing typical of prompt-injection attempts."""
    return _INSTRUCTION_LIKE.search(text) is not None
