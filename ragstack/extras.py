"""ragstack's optional parts (the extras of ``pyproject.toml``) and the error a feature raises
when its part is not installed: it names the extra that brings it."""

from __future__ import annotations

import importlib.util

from ragstack.errors import ConfigError

# extra -> what it brings (for messages and the README)
EXTRAS: dict[str, str] = {
    "torch": "torch, sentence-transformers and MiniLM's float weights",
    "llm": "llama-cpp-python (the local generator)",
    "ray": "Ray (ingest --executor ray)",
    "postgres": "psycopg (the PostgreSQL backend)",
    "remote": "bpe-openai (exact token counts for the remote generator)",
    "pandoc": "pandoc (EPUB, ODT, RTF, Org and reST documents)",
}


def install_hint(extra: str) -> str:
    hint = f"install it with `pip install 'ragstack[{extra}]'`"
    if extra == "torch":
        hint += " (the CPU build of torch first: see the README)"
    return hint


def missing(what: str, extra: str) -> ConfigError:
    """The error for ``what`` when the ``extra`` it needs is not installed."""
    return ConfigError(f"{what} needs the `{extra}` extra: {install_hint(extra)}")


def installed(module: str) -> bool:
    """Whether ``module`` (a top-level package) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, what: str, extra: str) -> None:
    """A ``ConfigError`` naming ``extra`` unless ``module`` is installed."""
    if not installed(module):
        raise missing(what, extra)
