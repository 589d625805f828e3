"""The OpenAI-compatible API with the official ``openai`` client against a live ``ragstack
serve`` (the real MiniLM embedder, the extractive generator): models, non-streaming and
streaming answers with their citations, follow-ups, list content, limits and errors; then a
server on the remote generator (a scripted OpenAI-compatible upstream) for the condensed
follow-up and an error in the middle of a stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion

from tests.api.conftest import Live, live_server
from tests.generation.test_remote import Reply, ScriptedServer, sse

pytestmark = pytest.mark.slow

REMOTE = "How many days per year can I work from another country?"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(tmp_path_factory.mktemp("openai"), "sentence-transformers") as server:
        yield server


def client(live: Live, who: str = "alice") -> OpenAI:
    return OpenAI(base_url=f"{live.url}/v1", api_key=live.keys[who], max_retries=0)


def names(sources: list[dict[str, Any]]) -> list[str]:
    return [Path(s["uri"]).name for s in sources]


def extra(response: Any) -> dict[str, Any]:
    """The ``ragstack`` field of a response or a chunk (what ``model_extra`` holds)."""
    found: dict[str, Any] = response.model_extra["ragstack"]
    return found


def text(response: ChatCompletion) -> str:
    content = response.choices[0].message.content
    assert content is not None
    return content


def test_models_are_the_collections_the_key_can_read(live: Live) -> None:
    alice, bob = client(live), client(live, "bob")
    assert {m.id for m in alice.models.list()} == {"handbook", "hr-only"}
    assert [m.id for m in bob.models.list()] == ["handbook"]  # hr-only holds nothing of his
    model = alice.models.retrieve("hr-only")
    assert (model.id, model.object, model.owned_by) == ("hr-only", "model", "ragstack")
    with pytest.raises(openai.NotFoundError) as hidden:
        bob.models.retrieve("hr-only")
    with pytest.raises(openai.NotFoundError) as missing:
        bob.models.retrieve("no-such")
    # a hidden collection answers exactly like a missing one (but for its name)
    assert str(hidden.value).replace("hr-only", "X") == str(missing.value).replace("no-such", "X")


def test_non_streaming_answer_cites(live: Live) -> None:
    long_system = "You are a careful assistant for the company handbook. " * 300  # ~16 KB
    response = client(live).chat.completions.create(
        model="handbook",
        messages=[
            {"role": "system", "content": long_system},
            {"role": "user", "content": "How many days of paid annual leave do employees get?"},
        ],
        temperature=0.2,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert "25 days" in text(response) and "\n\nReferences:\n[1] " in text(response)
    found = extra(response)
    assert names(found["citations"]) and set(names(found["citations"])) == {"vacation-policy.md"}
    assert all(c["chunk_id"].startswith("c_") for c in found["citations"])
    usage = response.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streaming_answer_chunks_follow_the_spec(live: Live) -> None:
    stream = client(live).chat.completions.create(
        model="handbook",
        messages=[{"role": "user", "content": "How long do I have to submit expense receipts?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # the usage chunk, last
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "30 days" in text and "References:" in text
    found = extra(finals[0])
    assert names(found["citations"]) and set(names(found["citations"])) == {"expense-policy.md"}
    assert all(c.object == "chat.completion.chunk" and c.model == "handbook" for c in chunks)


def test_a_follow_up_is_answered_from_the_conversation(live: Live) -> None:
    follow_up = "and for how many days per year?"
    alone = client(live).chat.completions.create(
        model="handbook", messages=[{"role": "user", "content": follow_up}]
    )
    in_context = client(live).chat.completions.create(
        model="handbook",
        messages=[
            {"role": "system", "content": "Answer from the handbook."},
            {"role": "user", "content": "Can I work from another country?"},
            {"role": "assistant", "content": "Yes, within limits [1]."},
            {"role": "user", "content": follow_up},
        ],
    )
    found = extra(in_context)
    assert found["query"] == f"{follow_up} (work another country)"
    assert names(found["citations"]) and set(names(found["citations"])) == {"remote-work.md"}
    assert "30 days per year" in text(in_context)
    # asked alone it lost its subject: another document comes first, and nothing is cited
    assert extra(alone)["query"] == follow_up
    assert names(extra(alone)["sources"])[0] != "remote-work.md"


def test_content_as_a_list_of_parts(live: Live) -> None:
    response = client(live).chat.completions.create(
        model="handbook",
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "How many weeks of parental leave"},
                    {"type": "text", "text": "do birth parents receive?"},
                ],
            },
        ],
    )
    assert "20 weeks" in text(response)
    picture: Any = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    with pytest.raises(openai.BadRequestError, match="only text content"):
        client(live).chat.completions.create(
            model="handbook",
            messages=[{"role": "user", "content": picture}],
        )


def test_long_histories_and_contents_are_taken(live: Live) -> None:
    history: list[Any] = []
    for i in range(150):  # 300 messages, well past the old limit of 100
        history += [{"role": "user", "content": f"Question {i} about the office?"},
                    {"role": "assistant", "content": "An answer. " * 50}]  # fmt: skip
    pasted = "Some pasted notes. " * 1000  # ~19,000 characters in one message
    question = "How many days of paid annual leave do employees get?"
    response = client(live).chat.completions.create(
        model="handbook",
        messages=[*history, {"role": "user", "content": f"{pasted}\n{question}"}],
    )
    assert response.choices[0].finish_reason == "stop"
    found = extra(response)
    # the question's end (up to 3,584 characters) is searched, and still finds the policy
    assert found["query"].endswith("annual leave do employees get?")
    assert names(found["sources"])[0] == "vacation-policy.md"


def test_errors(live: Live) -> None:
    wrong = OpenAI(base_url=f"{live.url}/v1", api_key="rsk_nope_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="handbook", messages=[{"role": "user", "content": "x"}])
    bob = client(live, "bob")
    with pytest.raises(openai.NotFoundError, match="no collection named 'hr-only'"):
        bob.chat.completions.create(model="hr-only", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="at least one user message"):
        bob.chat.completions.create(
            model="handbook", messages=[{"role": "system", "content": "only a system prompt"}]
        )
    with pytest.raises(openai.UnprocessableEntityError):
        bob.chat.completions.create(
            model="handbook", messages=[{"role": "user", "content": "x"}], n=2
        )
    # a stream that cannot start is a plain error response, before any chunk
    with pytest.raises(openai.NotFoundError):
        list(bob.chat.completions.create(
            model="hr-only", messages=[{"role": "user", "content": "x"}], stream=True
        ))  # fmt: skip


def test_requests_are_logged_as_json_with_their_request_id(live: Live) -> None:
    raw = client(live).chat.completions.with_raw_response.create(
        model="handbook",
        messages=[{"role": "user", "content": "How many days of paid annual leave?"}],
        extra_headers={"X-Request-ID": "openai-test-1"},
    )
    assert raw.headers["x-request-id"] == "openai-test-1"
    records = [json.loads(line) for line in live.log.read_text().splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "ragstack.access"]
    mine = [r for r in access if r["request_id"] == "openai-test-1"]
    assert [(r["route"], r["status"]) for r in mine] == [("/v1/chat/completions", 200)]
    assert all(live.keys["alice"] not in json.dumps(r) for r in records)
    assert not any("annual leave" in json.dumps(r) for r in records)  # no query text in logs


# -- on the remote generator ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedServer]:
    import threading

    server = ScriptedServer([])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def remote_live(
    tmp_path_factory: pytest.TempPathFactory, upstream: ScriptedServer
) -> Iterator[Live]:
    with live_server(
        tmp_path_factory.mktemp("openai-remote"),
        RAGSTACK_GENERATOR="remote",
        RAGSTACK_REMOTE_URL=upstream.url,
        RAGSTACK_GENERATOR_TIMEOUT_S="5",
        RAGSTACK_CACHE_ENABLED="false",
    ) as server:
        yield server


def test_the_remote_generator_condenses_a_follow_up(
    remote_live: Live, upstream: ScriptedServer
) -> None:
    upstream.requests.clear()
    upstream.replies = [
        Reply(body=[sse(REMOTE), sse(finish="stop"), "data: [DONE]\n\n"]),  # the condensed query
        Reply(body=[sse("Up to 30 days per year [1]."), sse(finish="stop"), "data: [DONE]\n\n"]),
    ]
    response = client(remote_live).chat.completions.create(
        model="handbook",
        messages=[
            {"role": "user", "content": "Can I work from another country?"},
            {"role": "assistant", "content": "Yes, within limits."},
            {"role": "user", "content": "and for how many days per year?"},
        ],
    )
    condense, answer = upstream.requests
    assert condense["max_tokens"] == 64 and "standalone" in condense["messages"][0]["content"]
    assert "Can I work from another country?" in condense["messages"][1]["content"]
    found = extra(response)
    assert found["query"] == REMOTE  # what the remote model made of it is what was searched
    assert REMOTE in answer["messages"][1]["content"]
    assert text(response).startswith("Up to 30 days per year [1].")


def test_a_failed_condense_falls_back_to_the_rule(
    remote_live: Live, upstream: ScriptedServer
) -> None:
    upstream.requests.clear()
    upstream.replies = [
        Reply(400, ['{"error": {"message": "no"}}']),  # the condense request is refused
        Reply(body=[sse("Up to 30 days [1]."), sse(finish="stop"), "data: [DONE]\n\n"]),
    ]
    response = client(remote_live).chat.completions.create(
        model="handbook",
        messages=[
            {"role": "user", "content": "Can I work from another country?"},
            {"role": "user", "content": "and for how many days per year?"},
        ],
    )
    query = extra(response)["query"]
    assert query == "and for how many days per year? (work another country)"


def test_an_error_mid_stream_is_an_error_event(remote_live: Live, upstream: ScriptedServer) -> None:
    upstream.requests.clear()
    upstream.replies = [Reply(body=[sse("Working abroad"), sse(" is allowed")])]  # then cut
    stream = client(remote_live).chat.completions.create(
        model="handbook",
        messages=[{"role": "user", "content": REMOTE}],
        stream=True,
    )
    seen: list[Any] = []
    with pytest.raises(openai.APIError, match="broke off the answer") as caught:
        seen.extend(stream)
    assert seen[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in seen) == "Working abroad is allowed"
    assert not any(c.choices[0].finish_reason for c in seen)  # no finish_reason made up
    assert caught.value.body["code"] == "unavailable"  # type: ignore[index]
