"""Answer quality on PubMedQA: ``python -m evals.answers [--generator extractive|local] [--json]``.

The corpus is ingested as one collection in two parts: every passage is public except the
gold passages of ``--heldout`` questions, which only ``group:gold`` may read. Answerable
questions are asked as ``user:eval`` + ``group:gold`` (every passage visible); held-out
questions as ``user:eval`` alone, so their gold passages are invisible through the same ACL
filter users rely on, and the right answer is to abstain.

With ``--followups``: follow-up questions instead (``evals.followups``: two-turn conversations
from PubMedQA and the handbook, recall@10 of the rewritten follow-up against the standalone
question, final JSON with ``followup_recall_ratio``).

Reported: citation precision (share of citations that point at a gold passage of the
question), citation recall (share of a question's gold passages cited, averaged), the
unsupported-citation rate (citations the verifier could not back with the cited text),
yes/no/maybe accuracy where the generator states one, the abstention rate on held-out
questions and the false-abstention rate on answerable ones. Table, then ONE final JSON line.

``--multipart``: questions that ask several things, answered part by part. Built by joining two
PubMedQA questions whose gold passages are known (as two questions, "Q1? Q2?", or as coordinated
clauses, "Q1, and q2?" when the second opens with a question word), some pairing an answerable
question with one whose gold passages are hidden; plus hand-written handbook questions whose
parts are answered by known sentences (``evals/multipart_handbook.json``), the demo's question
among them. Reported: part coverage (parts whose gold is cited by the answer, over answerable
parts), part precision (citations that point at a gold passage or sentence of one of the parts),
and part abstention (hidden parts the answer says the sources do not answer).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from pathlib import Path

from evals.beir import REPO_ROOT, shared_data_dir
from evals.collections import PRINCIPAL, eval_service
from evals.report import Reporter
from ragstack.answering import AnswerRequest, AnswerResponse
from ragstack.evaluation import doc_key
from ragstack.service import IngestRequest, Ragstack, SourceSpec

GOLD_GROUP = "group:gold"
_VERDICT = re.compile(r"^\W*(yes|no|maybe)\b", re.IGNORECASE)


def split_corpus(data: Path, heldout_gold: set[str], out: Path) -> tuple[Path, Path]:
    """``out/public`` and ``out/gold`` BEIR folders (rewritten only when they change)."""
    public, gold = out / "public", out / "gold"
    lines: dict[Path, list[str]] = {public: [], gold: []}
    with (data / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                target = gold if str(json.loads(line)["_id"]) in heldout_gold else public
                lines[target].append(line if line.endswith("\n") else line + "\n")
    for folder, rows in lines.items():
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "corpus.jsonl"
        text = "".join(rows)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return public, gold


def ensure(svc: Ragstack, public: Path, gold: Path, name: str) -> None:
    svc.ingest(
        IngestRequest(name, [SourceSpec(str(public))], public=True, delete_missing=False),
        principal=PRINCIPAL,
    )
    svc.ingest(
        IngestRequest(name, [SourceSpec(str(gold))], allow=(GOLD_GROUP,), delete_missing=False),
        principal=PRINCIPAL,
    )


def verdict(answer: str) -> str | None:
    m = _VERDICT.match(answer)
    return m.group(1).lower() if m else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "pubmedqa")
    parser.add_argument("--generator", default="extractive", help="extractive, local or remote")
    parser.add_argument("--questions", type=int, default=200, help="answerable questions asked")
    parser.add_argument("--heldout", type=int, default=100, help="questions whose gold is hidden")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--multipart", action="store_true", help="multi-part questions")
    parser.add_argument("--pairs", type=int, default=50, help="with --multipart: PubMedQA pairs")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    parser.add_argument(
        "--followups",
        action="store_true",
        help="measure follow-up questions instead (evals.followups)",
    )
    parser.add_argument("--followup-questions", type=int, default=60,
                        help="PubMedQA conversations built (plus the handbook's 15)")  # fmt: skip
    args = parser.parse_args(argv)
    rep = Reporter(args.json)
    if args.multipart:
        from evals.multipart import run_multipart

        rep.final(run_multipart(args, rep))
        return

    qa = [json.loads(line) for line in (args.data / "qa.jsonl").open(encoding="utf-8")]
    test = [q for q in qa if q.get("split") == "test"] or qa
    rng = random.Random(args.seed)
    rng.shuffle(test)
    heldout = test[: args.heldout]
    answerable = test[args.heldout : args.heldout + args.questions]
    hidden = {p for q in heldout for p in q["gold_passage_ids"]}
    public, gold = split_corpus(
        args.data, hidden, REPO_ROOT / ".cache" / "evals" / f"{args.data.name}-answers-{args.seed}"
    )
    svc = eval_service(args.embedder)
    name = f"{args.data.name}-answers-{args.seed}-{args.heldout}"
    t0 = time.perf_counter()
    ensure(svc, public, gold, name)
    ingest_s = time.perf_counter() - t0
    if args.followups:
        from evals import followups

        result = followups.run(
            svc, rep, pubmedqa=name, data=args.data, questions=answerable,
            principals=(PRINCIPAL, GOLD_GROUP), generator=args.generator,
            limit=args.followup_questions,
        )  # fmt: skip
        rep.final({**result, "ingest_s": ingest_s})
        return

    def ask(question: str, principals: tuple[str, ...]) -> AnswerResponse:
        request = AnswerRequest(
            name, question, principals, generator=args.generator, use_cache=False
        )
        return svc.ask(request)

    cited = cited_gold = unsupported = 0
    recalls: list[float] = []
    false_abstain = verdicts = correct = 0
    latencies: list[float] = []
    tokens_before: list[int] = []
    tokens_after: list[int] = []
    for q in answerable:
        r = ask(q["question"], (PRINCIPAL, GOLD_GROUP))
        latencies.append(r.timings_ms.get("total_ms", 0.0))
        tokens_before.append(r.context_tokens_before)
        tokens_after.append(r.context_tokens_after)
        goldset = set(q["gold_passage_ids"])
        keys = [doc_key(c.uri) for c in r.citations]
        cited += len(keys)
        cited_gold += sum(1 for k in keys if k in goldset)
        unsupported += r.unsupported_citations
        recalls.append(len(goldset & set(keys)) / len(goldset))
        false_abstain += r.abstained
        v = verdict(r.answer)
        if v is not None:
            verdicts += 1
            correct += v == q["answer"]
    abstained = 0
    heldout_cited_hidden = 0
    for q in heldout:
        r = ask(q["question"], (PRINCIPAL,))
        abstained += r.abstained
        heldout_cited_hidden += sum(1 for c in r.citations if doc_key(c.uri) in hidden)
    n = max(1, len(answerable))
    result = {
        "generator": args.generator,
        "questions": len(answerable),
        "heldout_questions": len(heldout),
        "citation_precision": cited_gold / cited if cited else 0.0,
        "citation_recall": statistics.fmean(recalls) if recalls else 0.0,
        "unsupported_rate": unsupported / cited if cited else 0.0,
        "abstention_rate": abstained / max(1, len(heldout)),
        "false_abstention_rate": false_abstain / n,
        "yes_no_maybe_accuracy": correct / verdicts if verdicts else None,
        "verdicts_given": verdicts,
        "hidden_passages_cited": heldout_cited_hidden,
        "answer_p50_ms": statistics.median(latencies) if latencies else 0.0,
        "context_tokens_before_mean": statistics.fmean(tokens_before) if tokens_before else 0.0,
        "context_tokens_after_mean": statistics.fmean(tokens_after) if tokens_after else 0.0,
        "ingest_s": ingest_s,
    }
    rep.table(
        f"Answers on {args.data.name} ({args.generator}; {len(answerable)} answerable, "
        f"{len(heldout)} with gold passages hidden by ACL)",
        ["metric", "value"],
        [[k, v if isinstance(v, int | float) or v is None else str(v)] for k, v in result.items()],
    )
    rep.final(result)


if __name__ == "__main__":
    main()
