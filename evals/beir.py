"""BEIR-layout datasets (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) and IR metrics."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """``$RAGSTACK_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("RAGSTACK_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class BeirDoc:
    doc_id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        return f"{self.title} {self.text}".strip()


@dataclass(frozen=True)
class BeirDataset:
    name: str
    path: Path
    corpus: list[BeirDoc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # of the chosen split

    def judged_queries(self) -> list[tuple[str, str]]:
        """``(query id, text)`` of every query with a judgement in the split, in file order."""
        return [(qid, text) for qid, text in self.queries.items() if qid in self.qrels]


def load_beir(path: Path, split: str = "test") -> BeirDataset:
    path = Path(path)
    if not (path / "corpus.jsonl").is_file():
        raise FileNotFoundError(f"{path} is not a BEIR folder (no corpus.jsonl)")
    corpus = []
    with (path / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                corpus.append(BeirDoc(str(row["_id"]), row.get("title") or "", row["text"]))
    queries: dict[str, str] = {}
    with (path / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    qrels_path = path / "qrels" / f"{split}.tsv"
    if qrels_path.is_file():
        with qrels_path.open(encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter="\t")
            next(reader, None)
            for qid, did, score in reader:
                qrels.setdefault(qid, {})[did] = int(score)
    return BeirDataset(path.name, path, corpus, queries, qrels)


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains and a log2 discount, as BEIR (pytrec_eval) computes it."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    rel = {d for d, g in relevant.items() if g > 0}
    return len(rel.intersection(ranked[:k])) / len(rel) if rel else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0
