"""PII detection quality and speed: ``python -m evals.pii.evaluate [--json]``.

Precision, recall and F1 per type on ``labelled.jsonl`` (a predicted span counts when it
overlaps an unmatched gold span of the same type), false positives on the texts with no PII,
and throughput in characters per second of the default (pattern) redactor.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from evals.report import Reporter
from ragstack.ingest.redacting import PATTERN_TYPES, PatternRedactor, find_pii

DATA = Path(__file__).with_name("labelled.jsonl")


def load(path: Path = DATA) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def score(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    stats: dict[str, dict[str, float]] = {}
    for row in rows:
        gold = [(s["type"], s["start"], s["end"]) for s in row["spans"]]
        pred = [(p.kind, p.start, p.end) for p in find_pii(row["text"])]
        used: set[int] = set()
        for kind, start, end in pred:
            st = stats.setdefault(kind, {"tp": 0, "fp": 0, "fn": 0})
            match = next(
                (
                    i
                    for i, (gk, gs, ge) in enumerate(gold)
                    if i not in used and gk == kind and gs < end and start < ge
                ),
                None,
            )
            if match is None:
                st["fp"] += 1
            else:
                used.add(match)
                st["tp"] += 1
        for i, (kind, _s, _e) in enumerate(gold):
            if i not in used:
                stats.setdefault(kind, {"tp": 0, "fp": 0, "fn": 0})["fn"] += 1
    for st in stats.values():
        tp, fp, fn = st["tp"], st["fp"], st["fn"]
        st["precision"] = tp / (tp + fp) if tp + fp else 1.0
        st["recall"] = tp / (tp + fn) if tp + fn else 1.0
        p, r = st["precision"], st["recall"]
        st["f1"] = 2 * p * r / (p + r) if p + r else 0.0
        st["support"] = tp + fn
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)
    rows = load()
    stats = score(rows)
    negatives = [r for r in rows if r["kind"] == "no_pii"]
    false_pos = sum(len(find_pii(r["text"])) for r in negatives)
    corpus = "\n".join(r["text"] for r in rows) * 20
    redactor = PatternRedactor()
    t0 = time.perf_counter()
    redactor.redact(corpus)
    chars_per_s = len(corpus) / (time.perf_counter() - t0)
    table_rows: list[list[Any]] = []
    for kind in sorted(stats):
        st = stats[kind]
        note = "pattern" if kind in PATTERN_TYPES else "needs NER (not in this build)"
        table_rows.append([kind, int(st["support"]), st["precision"], st["recall"], st["f1"], note])
    rep.table(
        f"PII detection on {DATA.name} ({len(rows)} texts, {len(negatives)} without PII)",
        ["type", "gold", "precision", "recall", "F1", "detector"],
        table_rows,
    )
    rep.say(
        f"false positives on texts without PII: {false_pos}; "
        f"pattern redaction speed: {chars_per_s / 1e6:.2f} M chars/s (one core)"
    )
    pattern = {k: v for k, v in stats.items() if k in PATTERN_TYPES}
    rep.final(
        {
            "per_type": stats,
            "false_positives_on_no_pii": false_pos,
            "pattern_min_recall": min(v["recall"] for v in pattern.values()),
            "pattern_min_precision": min(v["precision"] for v in pattern.values()),
            "chars_per_s": chars_per_s,
            "ner": None,
        }
    )


if __name__ == "__main__":
    main()
