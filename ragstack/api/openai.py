"""The OpenAI-compatible front door: ``GET /v1/models`` and ``POST /v1/chat/completions``, for
clients built on the OpenAI API (the ``openai`` packages, Open WebUI, LibreChat, Continue).

* A **model is a collection**: ``/v1/models`` lists the collections the key can read;
  a hidden one answers exactly like a missing one (404).
* **Messages** take ``content`` as a string or a list of parts (text parts are read; images,
  audio and files are refused with a 400). The last user message is the question; the user
  and assistant messages before it are the conversation, so a follow-up ("and for
  contractors?") is searched as the standalone question it stands for (the remote generator is
  asked for it; otherwise ``ragstack.conversation`` rewrites it by rule). System and developer
  messages are not used: the answer is grounded in the collection, under ragstack's own prompt.
* The **answer cites** as ``/v1/answer`` does: numbered references appended to the text (so no
  client drops them) and the full record in the ``ragstack`` field of the response, or of the
  stream's chunk that carries the ``finish_reason``.
* **Streams** follow the spec: a first chunk with ``delta.role``, content deltas, a chunk with
  ``finish_reason`` ``stop`` (or ``length`` when the answer reached ``max_tokens``), a usage
  chunk when ``stream_options.include_usage`` asks, then ``data: [DONE]``. A failure after the
  stream started is an ``error`` object event (what the OpenAI clients raise from), never an
  invented finish reason.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ragstack.api.deps import Reader
from ragstack.api.models import (
    AnswerIn,
    ChatChoice,
    ChatIn,
    ChatMessageIn,
    ChatMessageOut,
    ChatOut,
    ChatUsage,
    ModelList,
    ModelOut,
    TurnIn,
)
from ragstack.api.routes import Event, _generate, _streamed
from ragstack.conversation import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, MAX_TURN_CHARS
from ragstack.domain import CollectionInfo
from ragstack.errors import InputError

router = APIRouter(prefix="/v1", tags=["openai"])
ROUTE = "/v1/chat/completions"


# -- models -------------------------------------------------------------------------------------


def _model(info: CollectionInfo) -> ModelOut:
    return ModelOut(id=info.name, created=int(info.created_at.timestamp()))


@router.get("/models", summary="The collections this key can read, as OpenAI models")
def list_models(who: Reader) -> ModelList:
    found = who.state.svc.visible_collections(who.principals, who.tenant)
    who.audit("/v1/models", "models", 200, detail={"models": len(found)})
    return ModelList(data=[_model(info) for info, _ in found])


@router.get("/models/{model}", summary="One collection as an OpenAI model (404 if not visible)")
def get_model(model: str, who: Reader) -> ModelOut:
    try:
        info = who.state.svc.visible_collection(model, who.principals, who.tenant)
    except Exception as exc:
        who.audit_failure("/v1/models/{model}", "models", exc, collection=model)
        raise
    who.audit("/v1/models/{model}", "models", 200, collection=model)
    return _model(info)


# -- chat completions ---------------------------------------------------------------------------


def text_of(message: ChatMessageIn) -> str:
    """A message's text: the string, or its text parts joined (refusals skipped)."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for part in message.content:
        if part.type in ("text", "input_text"):
            texts.append(part.text or "")
        elif part.type != "refusal":
            raise InputError(
                f"only text content is read; a {message.role} message has a {part.type!r} part"
            )
    return "\n".join(t for t in texts if t)


def conversation(messages: list[ChatMessageIn]) -> tuple[str, list[TurnIn]]:
    """``(question, history)``: the last user message with text, and the user and assistant
    messages before it (the latest ``MAX_HISTORY_TURNS``, each clipped). A question longer
    than the search takes keeps its end, where a question after a pasted text usually is."""
    turns = [(m.role, text_of(m)) for m in messages]
    last = max((i for i, (role, text) in enumerate(turns) if role == "user" and text.strip()),
               default=None)  # fmt: skip
    if last is None:
        raise InputError("the messages need at least one user message with content")
    question = turns[last][1].strip()
    if len(question) > MAX_QUESTION_CHARS:
        question = question[-MAX_QUESTION_CHARS:].split(None, 1)[-1]
    history = [
        TurnIn(role=role, content=text[:MAX_TURN_CHARS])
        for role, text in turns[:last]
        if role in ("user", "assistant") and text.strip()
    ]
    return question, history[-MAX_HISTORY_TURNS:]


def references(response: dict[str, Any]) -> str:
    """The numbered sources as text under the answer, so no client drops the citations."""
    lines = [f"[{s['number']}] {s['title'] or s['uri']} ({s['uri']})" for s in response["sources"]]
    return "\n\nReferences:\n" + "\n".join(lines) if lines else ""


def ragstack_extra(response: dict[str, Any]) -> dict[str, Any]:
    keep = ("query", "citations", "sources", "abstained", "unsupported_citations", "cached",
            "timings_ms")  # fmt: skip
    return {k: response[k] for k in keep}


def _usage(response: dict[str, Any]) -> ChatUsage:
    u = response["usage"]
    prompt, completion = int(u["prompt_tokens"]), int(u["completion_tokens"])
    return ChatUsage(prompt_tokens=prompt, completion_tokens=completion,
                     total_tokens=prompt + completion)  # fmt: skip


def _finish(response: dict[str, Any], max_tokens: int) -> Literal["stop", "length"]:
    """``length`` when the generator stopped at the token limit, else ``stop``."""
    if not response["cached"] and response["usage"]["completion_tokens"] >= max_tokens:
        return "length"
    return "stop"


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completions over a collection (model = collection)",
    response_model=ChatOut,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(body: ChatIn, who: Reader) -> Any:
    try:
        question, history = conversation(body.messages)
    except InputError as exc:
        await run_in_threadpool(who.audit_failure, ROUTE, "answer", exc, collection=body.model)
        raise
    max_tokens = body.max_completion_tokens or body.max_tokens
    request = AnswerIn(collection=body.model, question=question, history=history,
                       max_tokens=max_tokens, stream=body.stream)  # fmt: skip
    limit = max_tokens or who.state.svc.settings.answer_max_tokens
    created, ident = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
    result = await _generate(request, who, ROUTE)  # in a generation slot, cancellable
    if isinstance(result, dict):
        return ChatOut(
            id=ident,
            created=created,
            model=body.model,
            choices=[
                ChatChoice(
                    index=0,
                    message=ChatMessageOut(content=result["answer"] + references(result)),
                    finish_reason=_finish(result, limit),
                )
            ],
            usage=_usage(result),
            ragstack=ragstack_extra(result),
        )
    usage = bool(body.stream_options and body.stream_options.include_usage)
    chunks = _Chunks(ident, created, body.model, usage)
    return _streamed(chunks.relay(result, limit), result)


class _Chunks:
    """The ``chat.completion.chunk`` events of one streamed answer."""

    def __init__(self, ident: str, created: int, model: str, usage: bool) -> None:
        self.head = {"id": ident, "object": "chat.completion.chunk", "created": created,
                     "model": model}  # fmt: skip
        self.usage = usage

    def _event(self, data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"

    def chunk(self, delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        more = {"usage": None} if self.usage else {}
        return self._event({**self.head, "choices": [choice], **more, **extra})

    def relay(self, events: Iterator[Event], max_tokens: int) -> Iterator[str]:
        yield self.chunk({"role": "assistant", "content": ""}, None)
        for name, payload in events:
            if name == "delta":
                yield self.chunk({"content": payload["text"]}, None)
            elif name == "answer":
                if refs := references(payload):
                    yield self.chunk({"content": refs}, None)
                yield self.chunk({}, _finish(payload, max_tokens),
                                 ragstack=ragstack_extra(payload))  # fmt: skip
                if self.usage:
                    usage = _usage(payload).model_dump()
                    yield self._event({**self.head, "choices": [], "usage": usage})
            else:  # the error shape OpenAI's clients raise from; no finish_reason is made up
                yield self._event({"error": payload})
        yield "data: [DONE]\n\n"
