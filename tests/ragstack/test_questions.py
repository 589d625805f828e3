"""Splitting multi-part questions (``ragstack.questions``)."""

from __future__ import annotations

import pytest

from ragstack.questions import split_question


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        ("How many days of paid annual leave do I get, and how many can I carry over?",
         ["How many days of paid annual leave do I get?", "how many can I carry over?"]),
        ("What is the expense limit for hotels? Who approves exceptions?",
         ["What is the expense limit for hotels?", "Who approves exceptions?"]),
        ("Is the vaccine safe and is it effective in children?",
         ["Is the vaccine safe?", "is it effective in children?"]),
        ("When is the deadline, where do I submit it, and who reviews it?",
         ["When is the deadline?", "where do I submit it?", "who reviews it?"]),
        # one question: coordination inside a noun phrase, or no question word after "and"
        ("How do black and white cats differ?", ["How do black and white cats differ?"]),
        ("Salt and pepper: which is better?", ["Salt and pepper: which is better?"]),
        ("Do mitochondria play a role in remodelling lace plant leaves?",
         ["Do mitochondria play a role in remodelling lace plant leaves?"]),
    ],
)  # fmt: skip
def test_parts(question: str, parts: list[str]) -> None:
    assert [p.text for p in split_question(question)] == parts


def test_a_part_that_leans_on_an_earlier_one_borrows_its_subject() -> None:
    first, second = split_question(
        "How many days of paid annual leave do I get, and how many can I carry over?"
    )
    assert first.query == first.text
    assert "leave" in second.query and "days" in second.query, second.query
    assert second.words == ("carri",), "what must be matched stays the part's own words"


def test_too_many_parts_is_one_question() -> None:
    question = "Who? What? When? Where? Why is it so?"
    assert [p.text for p in split_question(question)] == [question]


def test_a_follow_ups_context_is_no_part() -> None:
    """The rewrite of a follow-up appends its subject in brackets: context for each part."""
    assert len(split_question("and for how many days per year? (work another country)")) == 1
    parts = split_question("How many days do I get, and who approves them? (annual leave)")
    assert [p.text for p in parts] == ["How many days do I get?", "who approves them?"]
    assert all(p.query.endswith("annual leave)") for p in parts)
