"""Calibrate the extractive generator: ``python -m evals.calibrate_extractive [--json]``.

On PubMedQA questions *outside* the test split (``evals.answers`` reports on the test split),
through the same collection, retrieval and compression ``ragstack ask`` uses:

- answerable: the question's gold passages are visible;
- hidden: the same question with its gold passages removed from the retrieved chunks (what
  the ACL filter does to a caller who may not read them), where the right answer is to abstain.

Every sentence of the compressed context is scored once; then a grid of ``min_score`` (below
it: abstain) and ``relative_min`` (further sentences need this share of the best score) is
replayed over the scores. The pick maximises the mean of citation precision, citation recall,
abstention on hidden and answering on answerable questions.
Set the result as ``RAGSTACK_EXTRACTIVE_MIN_SCORE`` / ``RAGSTACK_EXTRACTIVE_RELATIVE_MIN``
(the defaults in ``ragstack.config`` come from this script). Table, then ONE final JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evals.answers import GOLD_GROUP, ensure, split_corpus
from evals.beir import REPO_ROOT, shared_data_dir
from evals.collections import PRINCIPAL, eval_service
from evals.report import Cell, Reporter
from ragstack.evaluation import doc_key
from ragstack.generation.extractive import ExtractiveGenerator, choose
from ragstack.search import Hit
from ragstack.service import Ragstack


@dataclass(frozen=True)
class Scored:
    """Every sentence of one compressed context, scored and best first, and which document
    each source number is."""

    sentences: list[tuple[float, int, str]]
    docs: dict[int, str]

    def top(self) -> float | None:
        return self.sentences[0][0] if self.sentences else None


@dataclass(frozen=True)
class Case:
    gold: frozenset[str]
    answerable: Scored
    hidden: Scored


def scored_context(
    svc: Ragstack, gen: ExtractiveGenerator, question: str, hits: Sequence[Hit]
) -> Scored:
    context, sources = svc.compress(question, hits, gen)
    docs = {s.number: doc_key(s.hit.uri) for s in context.sources}
    return Scored(gen.score(question, sources), docs)


def replay(
    cases: Sequence[Case], min_score: float, relative_min: float, max_sentences: int
) -> dict[str, float]:
    """What the generator would cite and when it would abstain, under these thresholds."""
    cited = gold_cited = false_abstain = abstain = 0
    recalls = []
    for c in cases:
        picked = choose(
            c.answerable.sentences,
            min_score=min_score,
            relative_min=relative_min,
            max_sentences=max_sentences,
        )
        docs = [c.answerable.docs[n] for _s, n, _t in picked]
        false_abstain += not docs
        cited += len(docs)
        gold_cited += sum(d in c.gold for d in docs)
        recalls.append(len(c.gold & set(docs)) / len(c.gold))
        top = c.hidden.top()
        abstain += top is None or top < min_score
    n = len(cases)
    precision = gold_cited / cited if cited else 0.0
    return {
        "citation_precision": precision,
        "citation_recall": statistics.fmean(recalls),
        "abstention_rate": abstain / n,
        "false_abstention_rate": false_abstain / n,
        "objective": (precision + statistics.fmean(recalls) + abstain / n + 1 - false_abstain / n)
        / 4,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "pubmedqa")
    parser.add_argument("--questions", type=int, default=150, help="non-test questions used")
    parser.add_argument("--seed", type=int, default=0, help="the evals.answers collection seed")
    parser.add_argument("--heldout", type=int, default=100, help="the evals.answers collection")
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)

    qa = [json.loads(line) for line in (args.data / "qa.jsonl").open(encoding="utf-8")]
    test = [q for q in qa if q.get("split") == "test"]
    other = [q for q in qa if q.get("split") != "test"]
    if not other:
        raise SystemExit("no questions outside the test split to calibrate on")
    # the collection evals.answers builds (its hidden gold is test-split only)
    rng = random.Random(args.seed)
    rng.shuffle(test)
    hidden_test = {p for q in test[: args.heldout] for p in q["gold_passage_ids"]}
    public, gold = split_corpus(
        args.data,
        hidden_test,
        REPO_ROOT / ".cache" / "evals" / f"{args.data.name}-answers-{args.seed}",
    )
    svc = eval_service(args.embedder)
    name = f"{args.data.name}-answers-{args.seed}-{args.heldout}"
    ensure(svc, public, gold, name)
    calib = random.Random(1).sample(other, min(args.questions, len(other)))

    gen = svc.c.generator_for("extractive") if svc.c.generator_for else None
    assert isinstance(gen, ExtractiveGenerator)
    k = svc.settings.answer_chunks
    cases = []
    for i, q in enumerate(calib):
        goldset = frozenset(q["gold_passage_ids"])
        hits = svc.search(
            name, q["question"], principals=[PRINCIPAL, GOLD_GROUP], top_k=k + len(goldset)
        ).hits
        visible = hits[:k]
        without = [h for h in hits if doc_key(h.uri) not in goldset][:k]
        cases.append(
            Case(
                goldset,
                scored_context(svc, gen, q["question"], visible),
                scored_context(svc, gen, q["question"], without),
            )
        )
        if not args.json and (i + 1) % 25 == 0:
            print(f"scored {i + 1}/{len(calib)} questions", flush=True)

    rows: list[list[Cell]] = []
    grid = []
    for min_score in np.round(np.arange(0.30, 0.91, 0.025), 3):
        for relative_min in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95):
            m = replay(cases, float(min_score), relative_min, gen.max_sentences)
            grid.append((m["objective"], m["citation_recall"], float(min_score), relative_min, m))
    best = max(grid, key=lambda g: (g[0], g[1]))
    current = replay(cases, gen.min_score, gen.relative_min, gen.max_sentences)
    for _o, _r, ms, rm, m in sorted(grid, key=lambda g: (-g[0], -g[1]))[:12]:
        rows.append(
            [ms, rm, m["citation_precision"], m["citation_recall"], m["abstention_rate"],
             m["false_abstention_rate"], m["objective"]]
        )  # fmt: skip
    rows.append(
        [f"now {gen.min_score}", gen.relative_min, current["citation_precision"],
         current["citation_recall"], current["abstention_rate"],
         current["false_abstention_rate"], current["objective"]]
    )  # fmt: skip
    rep.table(
        f"Extractive calibration on {len(cases)} PubMedQA questions outside the test split "
        "(best 12 of the grid, then the current setting)",
        ["min_score", "relative_min", "precision", "recall", "abstain hidden",
         "false abstain", "objective"],
        rows,
    )  # fmt: skip
    top_hidden = [t for c in cases if (t := c.hidden.top()) is not None]
    top_answerable = [t for c in cases if (t := c.answerable.top()) is not None]
    rep.say(
        f"best sentence score: answerable median {statistics.median(top_answerable):.3f}, "
        f"gold hidden median {statistics.median(top_hidden):.3f}"
    )
    rep.final(
        {
            "questions": len(cases),
            "min_score": best[2],
            "relative_min": best[3],
            **best[4],
            "current": {"min_score": gen.min_score, "relative_min": gen.relative_min, **current},
        }
    )


if __name__ == "__main__":
    main()
