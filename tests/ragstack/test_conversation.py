"""Follow-ups made standalone by rule (``ragstack.conversation``), and by the service with its
redaction: what is searched never holds PII the conversation carried."""

from __future__ import annotations

from ragstack.answering import AnswerRequest
from ragstack.conversation import MAX_QUERY_CHARS, Role, Turn, is_follow_up, standalone
from ragstack.service import IngestRequest, SourceSpec
from tests.ragstack.conftest import HANDBOOK, Factory

U: Role = "user"
A: Role = "assistant"


def test_what_counts_as_a_follow_up() -> None:
    follow_ups = ("and for contractors?", "What about the second one?", "Why?", "Is it capped?",
                  "How long did they last?", "Same for Europe?", "")  # fmt: skip
    for follow_up in follow_ups:
        assert is_follow_up(follow_up), follow_up
    for alone in ("How many vacation days do employees get?",
                  "Which incident severity levels need a status page update?"):  # fmt: skip
        assert not is_follow_up(alone), alone


def test_a_follow_up_carries_the_previous_question() -> None:
    history = [Turn(U, "How many vacation days do employees get?"), Turn(A, "25 days [1].")]
    assert standalone("and for contractors?", history) == (
        "and for contractors? (vacation days employees)"
    )
    # a question that stands alone is left exactly as it is
    alone = "What is the meal allowance in Europe?"
    assert standalone(alone, history) == alone
    assert standalone("and for contractors?", []) == "and for contractors?"


def test_a_chain_of_follow_ups_keeps_its_subject() -> None:
    history = [Turn(U, "What is the parental leave for birth parents?"), Turn(A, "20 weeks."),
               Turn(U, "and for non-birth parents?"), Turn(A, "12 weeks.")]  # fmt: skip
    assert standalone("Can it be split?", history) == (
        "Can it be split? (non-birth parents parental leave birth)"
    )


def test_an_ordinal_points_into_the_previous_answer_list() -> None:
    levels = "1. SEV1: the product is down\n2. SEV2: a major feature is broken\n3. SEV3"
    history = [Turn(U, "What are the severity levels?"), Turn(A, levels)]
    assert standalone("what about the second one?", history) == (
        "what about the second one? (SEV2 major feature broken severity levels)"
    )


def test_the_rewrite_stays_within_the_query_limit() -> None:
    long = ("and " + "word " * 810).strip()  # a follow-up 50 characters short of the limit
    out = standalone(long, [Turn(U, "learning budget carry-over allowance expectations")])
    assert len(out) <= MAX_QUERY_CHARS and out.startswith(long)
    assert out.endswith("(learning budget carry-over allowance)")  # what fits: not "expectations"


def test_the_service_redacts_the_conversation_before_rewriting(make_service: Factory) -> None:
    svc = make_service()
    svc.ingest(IngestRequest("hb", [SourceSpec(str(HANDBOOK))], public=True),
               principal="user:alice")  # fmt: skip
    history = [Turn(U, "What did jane.doe@example.com ask about the learning budget?")]
    query = svc.standalone_question("hb", "and how many days come with it?", history)
    assert "jane.doe" not in query and "EMAIL" in query and "learning budget" in query
    response = svc.ask(AnswerRequest("hb", "and how many days come with it?", ("user:bob",),
                                     history=tuple(history)))  # fmt: skip
    assert response.query == query  # what was searched, as the answer reports it
