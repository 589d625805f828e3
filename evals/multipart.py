"""Multi-part questions (``python -m evals.answers --multipart``): see ``evals.answers``."""

from __future__ import annotations

import argparse
import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.beir import REPO_ROOT
from evals.collections import PRINCIPAL, eval_service
from evals.report import Cell, Reporter
from ragstack.answering import AnswerRequest, AnswerResponse
from ragstack.demo import SAMPLE_DIR
from ragstack.evaluation import doc_key
from ragstack.questions import split_question
from ragstack.service import IngestRequest, Ragstack, SourceSpec

HANDBOOK_SET = Path(__file__).with_name("multipart_handbook.json")
HANDBOOK = SAMPLE_DIR
_QUESTION_WORD = frozenset((
    "how", "what", "when", "where", "who", "which", "why", "is", "are", "do", "does", "did",
    "can", "could", "should", "will", "would", "has", "have",
))  # fmt: skip


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass
class Gold:
    """What supports one part: passage ids (PubMedQA), or a document and a phrase of the
    sentence that answers it (the handbook); ``None`` for a part nothing supports."""

    passages: frozenset[str] | None = None
    document: str | None = None
    phrase: str | None = None

    @property
    def answerable(self) -> bool:
        return bool(self.passages) or self.document is not None

    def cited_by(self, uri: str, quote: str) -> bool:
        if self.passages is not None:
            return doc_key(uri) in self.passages
        if self.document is None or self.phrase is None or not uri.endswith(self.document):
            return False
        return _fold(self.phrase) in _fold(quote)


@dataclass
class Case:
    collection: str
    question: str
    parts: list[Gold]
    principals: tuple[str, ...]


def join(first: str, second: str, rng: random.Random) -> str:
    """Two questions as one: two question sentences, or coordinated clauses."""
    a, b = first.strip().rstrip("?"), second.strip().rstrip("?")
    if b.split()[0].lower() in _QUESTION_WORD and rng.random() < 0.5:
        return f"{a}, and {b[0].lower()}{b[1:]}?"
    return f"{a}? {b}?"


def pubmed_cases(args: argparse.Namespace, svc: Ragstack) -> list[Case]:
    from evals.answers import GOLD_GROUP, ensure, split_corpus

    qa = [json.loads(line) for line in (args.data / "qa.jsonl").open(encoding="utf-8")]
    test = [q for q in qa if q.get("split") == "test"] or qa
    rng = random.Random(args.seed)
    rng.shuffle(test)
    heldout, answerable = test[: args.heldout], test[args.heldout :]
    hidden = {p for q in heldout for p in q["gold_passage_ids"]}
    out = REPO_ROOT / ".cache" / "evals" / f"{args.data.name}-answers-{args.seed}"
    public, gold = split_corpus(args.data, hidden, out)
    name = f"{args.data.name}-answers-{args.seed}-{args.heldout}"
    ensure(svc, public, gold, name)
    who = (PRINCIPAL, GOLD_GROUP)
    cases = []
    for i in range(args.pairs):
        q1, q2 = answerable[2 * i], answerable[2 * i + 1]
        g1, g2 = (Gold(frozenset(q["gold_passage_ids"])) for q in (q1, q2))
        cases.append(Case(name, join(q1["question"], q2["question"], rng), [g1, g2], who))
    for i in range(max(1, args.pairs // 5)):  # the second part's gold is hidden from the asker
        q1, q2 = answerable[2 * args.pairs + i], heldout[i]
        golds = [Gold(frozenset(q1["gold_passage_ids"])), Gold()]
        cases.append(Case(name, join(q1["question"], q2["question"], rng), golds, (PRINCIPAL,)))
    return cases


def handbook_cases(svc: Ragstack) -> list[Case]:
    svc.ingest(IngestRequest("handbook-multipart", [SourceSpec(str(HANDBOOK))], public=True),
               principal=PRINCIPAL)  # fmt: skip
    cases = []
    for row in json.loads(HANDBOOK_SET.read_text(encoding="utf-8")):
        golds = [Gold(document=d, phrase=p) if d else Gold() for d, p in row["parts"]]
        cases.append(Case("handbook-multipart", row["question"], golds, (PRINCIPAL, "group:hr")))
    return cases


def score(case: Case, r: AnswerResponse) -> dict[str, Any]:
    """Per answer: answerable parts covered, citations on a gold, hidden parts declared."""
    detected = len(split_question(case.question))
    cites = [(c.uri, c.quote) for c in r.citations if c.supported]
    covered = sum(1 for g in case.parts if g.answerable and any(g.cited_by(u, q) for u, q in cites))
    on_gold = sum(1 for u, q in cites if any(g.cited_by(u, q) for g in case.parts))
    declared = {p["text"] for p in r.parts if not p["answered"]}
    hidden_said = 0
    if detected == len(case.parts):
        hidden_said = sum(1 for g, p in zip(case.parts, r.parts, strict=False)
                          if not g.answerable and p["text"] in declared)  # fmt: skip
    return {
        "answerable": sum(g.answerable for g in case.parts),
        "covered": covered,
        "citations": len(cites),
        "on_gold": on_gold,
        "hidden": sum(not g.answerable for g in case.parts),
        "hidden_said": hidden_said,
        "split": detected == len(case.parts),
    }


def run_multipart(args: argparse.Namespace, rep: Reporter) -> dict[str, Any]:
    svc = eval_service(args.embedder)
    groups = {"pubmedqa": pubmed_cases(args, svc), "handbook": handbook_cases(svc)}
    rows: list[list[Cell]] = []
    totals: dict[str, int] = {}
    latencies: list[float] = []
    for label, cases in groups.items():
        sums: dict[str, int] = {}
        for case in cases:
            r = svc.ask(AnswerRequest(case.collection, case.question, case.principals,
                                      generator=args.generator, use_cache=False))  # fmt: skip
            latencies.append(r.timings_ms.get("total_ms", 0.0))
            for k, v in score(case, r).items():
                sums[k] = sums.get(k, 0) + int(v)
        rows.append([label, len(cases), sums["split"], sums["covered"] / max(1, sums["answerable"]),
                     sums["on_gold"] / max(1, sums["citations"]),
                     sums["hidden_said"] / max(1, sums["hidden"])])  # fmt: skip
        for k, v in sums.items():
            totals[k] = totals.get(k, 0) + v
    questions = sum(len(c) for c in groups.values())
    result = {
        "generator": args.generator,
        "questions": questions,
        "parts_detected_rate": totals["split"] / questions,
        "part_coverage": totals["covered"] / max(1, totals["answerable"]),
        "part_precision": totals["on_gold"] / max(1, totals["citations"]),
        "part_abstention": totals["hidden_said"] / max(1, totals["hidden"]),
        "answer_p50_ms": statistics.median(latencies) if latencies else 0.0,
    }
    rep.table(
        f"Multi-part questions ({args.generator})",
        ["set", "questions", "split right", "part coverage", "part precision", "hidden declared"],
        rows,
    )
    return result
