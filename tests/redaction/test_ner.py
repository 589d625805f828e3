"""PERSON and LOCATION through the real spaCy model (en_core_web_sm from its PyPI package)."""

from __future__ import annotations

import pytest

from ragstack.redaction import Redactor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ner() -> Redactor:
    redactor = Redactor(ner=True)
    redactor.warm_up()
    return redactor


def test_people_and_places_are_masked(ner: Redactor) -> None:
    text = "Maria Garcia moved from Berlin to Toronto; write to maria.garcia@example.com."
    result = ner.redact(text)
    assert result.text == "<PERSON> moved from <LOCATION> to <LOCATION>; write to <EMAIL>."
    assert dict(result.counts) == {"PERSON": 1, "LOCATION": 2, "EMAIL": 1}


def test_eponyms_and_genes_are_not_people(ner: Redactor) -> None:
    text = (
        "Patients with Parkinson's disease, Hodgkin lymphoma or Crohn's disease were compared "
        "with Fisher's exact test; TP53 and BRCA1 expression did not differ (p < 0.05)."
    )
    assert ner.redact(text).text == text


def test_pseudonyms_for_names(ner: Redactor) -> None:
    r = Redactor("pseudonym", salt="s", ner=True)
    result = r.redact("Maria Garcia met Tom Smith. Later Maria Garcia called Tom Smith again.")
    tokens = [s.replacement for s in result.spans if s.type == "PERSON"]
    assert len(tokens) == 4
    assert tokens[0] == tokens[2] != tokens[1] == tokens[3]


def test_batched_equals_one_by_one(ner: Redactor) -> None:
    texts = ["Ingrid Larsen lives in Oslo.", "", "No names here.", "Call Kwame Mensah in Accra."]
    assert ner.redact_many(texts) == [ner.redact(t) for t in texts]


def test_long_text_offsets(ner: Redactor) -> None:
    filler = "The committee reviewed the quarterly figures in detail. " * 2500  # > 100k chars
    text = filler + "Then Maria Garcia presented the plan in Madrid."
    result = ner.redact(text)
    assert {text[s.start : s.end] for s in result.spans} >= {"Maria Garcia", "Madrid"}
