"""PII detection quality and speed: ``python -m evals.pii.evaluate [--ner] [--presidio] [--json]``.

Precision, recall and F1 per type on ``labelled.jsonl``: a predicted span is a true positive
when it overlaps a not yet matched gold span of the same type (``exact`` counts those whose
boundaries are identical too). Also false positives on the texts without PII, and throughput
in characters per second on one core, per text as ingest calls it (each chunk on its own).

``--ner`` adds PERSON and LOCATION through spaCy (``en_core_web_sm`` from PyPI) and times that
mode, per text and batched (``redact_many``). ``--presidio`` scores presidio-analyzer's own
recognisers for the pattern types on the same texts, for comparison (needs presidio-analyzer).
The table goes to stdout, then ONE final JSON line (only that line with ``--json``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.report import Reporter
from ragstack.redaction import NER_TYPES, PATTERN_TYPES, Redactor

# spaCy imports presidio-analyzer (when installed) through an entry point, and with it
# tldextract, which would fetch the public suffix list: never, here.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).with_name("labelled.jsonl")
Spans = list[tuple[str, int, int]]
Detector = Callable[[Sequence[str]], list[Spans]]


@dataclass
class TypeStats:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    exact: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def as_dict(self) -> dict[str, float]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "exact": self.exact,
            "support": self.support,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def load(path: Path = DATA) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def redactor_detector(redactor: Redactor) -> Detector:
    def detect(texts: Sequence[str]) -> list[Spans]:
        return [[(d.type, d.start, d.end) for d in found] for found in redactor.detect_many(texts)]

    return detect


def score(
    rows: list[dict[str, Any]], detect: Detector, types: frozenset[str]
) -> dict[str, TypeStats]:
    """Per-type counts over ``rows`` for the gold spans of ``types``."""
    stats = {kind: TypeStats() for kind in sorted(types)}
    predictions = detect([r["text"] for r in rows])
    for row, pred in zip(rows, predictions, strict=True):
        gold = [(s["type"], s["start"], s["end"]) for s in row["spans"] if s["type"] in types]
        used: set[int] = set()
        for kind, start, end in pred:
            if kind not in types:
                continue
            st = stats[kind]
            match = next(
                (
                    i
                    for i, (gk, gs, ge) in enumerate(gold)
                    if i not in used and gk == kind and gs < end and start < ge
                ),
                None,
            )
            if match is None:
                st.fp += 1
                continue
            used.add(match)
            st.tp += 1
            st.exact += gold[match][1:] == (start, end)
        for i, (kind, _s, _e) in enumerate(gold):
            if i not in used:
                stats[kind].fn += 1
    return stats


def any_type_recall(rows: list[dict[str, Any]], detect: Detector, types: frozenset[str]) -> float:
    """Share of gold spans of ``types`` overlapped by a prediction of any of ``types``: what
    was hidden, even when NER named it wrongly (a city masked as <PERSON> is still masked)."""
    hit = total = 0
    for row, pred in zip(rows, detect([r["text"] for r in rows]), strict=True):
        for s in row["spans"]:
            if s["type"] in types:
                total += 1
                hit += any(k in types and a < s["end"] and s["start"] < b for k, a, b in pred)
    return hit / total if total else 1.0


def false_positives_on_clean(rows: list[dict[str, Any]], detect: Detector) -> int:
    clean = [r["text"] for r in rows if r["kind"] == "no_pii"]
    return sum(len(found) for found in detect(clean))


def throughput(
    texts: Sequence[str], run: Callable[[Sequence[str]], object], budget: float
) -> float:
    """Characters per second: best of whole passes over ``texts`` within ``budget`` seconds."""
    chars = sum(len(t) for t in texts)
    best = float("inf")
    deadline = time.perf_counter() + budget
    passes = 0
    while passes < 2 or (time.perf_counter() < deadline and passes < 50):
        t0 = time.perf_counter()
        run(texts)
        best = min(best, time.perf_counter() - t0)
        passes += 1
    return chars / best


def presidio_detector() -> Detector:
    """presidio-analyzer's pattern recognisers, called directly (no NLP engine, no spaCy)."""
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    # By name, so that type checking does not need presidio installed (it is optional).
    rec: Any = importlib.import_module("presidio_analyzer.predefined_recognizers")

    names = {
        "EMAIL_ADDRESS": "EMAIL",
        "PHONE_NUMBER": "PHONE",
        "CREDIT_CARD": "CREDIT_CARD",
        "IBAN_CODE": "IBAN",
        "US_SSN": "US_SSN",
        "IP_ADDRESS": "IP_ADDRESS",
    }
    recognizers = [
        rec.EmailRecognizer(),
        rec.PhoneRecognizer(),
        rec.CreditCardRecognizer(),
        rec.IbanRecognizer(),
        rec.UsSsnRecognizer(),
        rec.IpRecognizer(),
    ]
    entities = list(names)

    def detect(texts: Sequence[str]) -> list[Spans]:
        out: list[Spans] = []
        for text in texts:
            found: Spans = []
            for recognizer in recognizers:
                for r in recognizer.analyze(text, entities, None):
                    if r.score >= 0.3:  # presidio's SSN "weak" patterns score 0.05-0.3
                        found.append((names[r.entity_type], r.start, r.end))
            out.append(found)
        return out

    return detect


def stats_rows(stats: dict[str, TypeStats], detector: str) -> list[list[Any]]:
    return [
        [kind, st.support, st.precision, st.recall, st.f1, st.exact, detector]
        for kind, st in stats.items()
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ner", action="store_true", help="also PERSON/LOCATION through spaCy")
    parser.add_argument("--presidio", action="store_true", help="compare presidio's recognisers")
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per speed test")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)
    rows = load()
    texts = [r["text"] for r in rows]
    n_clean = sum(r["kind"] == "no_pii" for r in rows)
    header = ["type", "gold", "precision", "recall", "F1", "exact", "detector"]

    pattern = Redactor()
    detect = redactor_detector(pattern)
    stats = score(rows, detect, PATTERN_TYPES)
    table = stats_rows(stats, "pattern")
    result: dict[str, Any] = {
        "texts": len(rows),
        "texts_without_pii": n_clean,
        "gold_spans": sum(len(r["spans"]) for r in rows),
        "per_type": {k: v.as_dict() for k, v in stats.items()},
        "false_positives_on_no_pii": false_positives_on_clean(rows, detect),
        "pattern_min_recall": min(st.recall for st in stats.values()),
        "pattern_min_precision": min(st.precision for st in stats.values()),
        "chars_per_s": throughput(texts, pattern.redact_many, args.budget),
        "ner": None,
        "presidio": None,
    }
    if args.ner:
        ner = Redactor(ner=True)
        ner.warm_up()
        ner_detect = redactor_detector(ner)
        ner_stats = score(rows, ner_detect, PATTERN_TYPES | NER_TYPES)
        table += stats_rows({k: ner_stats[k] for k in sorted(NER_TYPES)}, "spaCy NER")
        result["ner"] = {
            "per_type": {k: ner_stats[k].as_dict() for k in sorted(NER_TYPES)},
            "false_positives_on_no_pii": false_positives_on_clean(rows, ner_detect),
            "any_type_recall": any_type_recall(rows, ner_detect, NER_TYPES),
            "chars_per_s_batched": throughput(texts, ner.redact_many, args.budget),
            "chars_per_s_per_text": throughput(
                texts, lambda ts: [ner.redact(t) for t in ts], args.budget
            ),
        }
    if args.presidio:
        p_detect = presidio_detector()
        p_stats = score(rows, p_detect, PATTERN_TYPES)
        table += stats_rows(p_stats, "presidio")
        result["presidio"] = {
            "per_type": {k: v.as_dict() for k, v in p_stats.items()},
            "false_positives_on_no_pii": false_positives_on_clean(rows, p_detect),
            "chars_per_s": throughput(texts, p_detect, args.budget),
        }
    rep.table(
        f"PII detection on {DATA.name}: {len(rows)} texts ({n_clean} without PII), "
        f"{result['gold_spans']} gold spans; a hit overlaps a gold span of its type",
        header,
        table,
    )
    lines = [
        f"pattern mode: {result['chars_per_s'] / 1e6:.2f} M chars/s per text on one core; "
        f"false positives on texts without PII: {result['false_positives_on_no_pii']}"
    ]
    if result["ner"] is not None:
        n = result["ner"]
        lines.append(
            f"NER mode: {n['chars_per_s_batched'] / 1e3:.0f} K chars/s batched, "
            f"{n['chars_per_s_per_text'] / 1e3:.0f} K chars/s per text; false positives on "
            f"texts without PII: {n['false_positives_on_no_pii']}; PERSON/LOCATION hidden under "
            f"either placeholder: {n['any_type_recall']:.3f}"
        )
    if result["presidio"] is not None:
        p = result["presidio"]
        lines.append(
            f"presidio recognisers: {p['chars_per_s'] / 1e6:.2f} M chars/s; false positives on "
            f"texts without PII: {p['false_positives_on_no_pii']}"
        )
    rep.say("\n".join(lines))
    rep.final(result)


if __name__ == "__main__":
    main()
