"""BEIR-layout datasets (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); the IR metrics live
in ``ragstack.evaluation`` (``ragstack tune`` uses them too) and are re-exported here."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ragstack.evaluation import load_judgements, mrr_at_k, ndcg_at_k, recall_at_k
from ragstack.search import Fusion, Hit, Mode

if TYPE_CHECKING:
    from ragstack.service import Ragstack

__all__ = [
    "BeirDataset",
    "BeirDoc",
    "load_beir",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "shared_data_dir",
]

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
    queries, qrels = load_judgements(path, split)
    return BeirDataset(path.name, path, corpus, queries, qrels)


def main(argv: list[str] | None = None) -> None:
    """``python -m evals.beir --data ../shared/data/scifact [--json]``: retrieval quality per
    mode through the service layer (ACL filter on, one query at a time)."""
    import argparse
    from dataclasses import replace

    from evals.collections import PRINCIPAL, default_reranker, ensure_collection, eval_service
    from evals.report import Cell, Reporter
    from ragstack.evaluation import evaluate

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "scifact")
    parser.add_argument("--split", default="test", help="judgements reported (qrels/<split>.tsv)")
    parser.add_argument(
        "--tune-split",
        default="train",
        help="fusion tuned on these judgements first, if the folder has them ('' = no tuning); "
        "queries judged in --split are always left out (so 'all' means all but the reported)",
    )
    parser.add_argument(
        "--group-by",
        default="",
        help="document metadata key naming a parent (pmid for PubMedQA): tune group evidence",
    )
    parser.add_argument(
        "--fusion-from",
        type=Path,
        default=None,
        help="also run hybrid with the fusion tuned for another BEIR folder (run on it first): "
        "how a tuning transfers to data it never saw",
    )
    parser.add_argument("--embedder", default=None, help="RAGSTACK_EMBEDDER for the eval data dir")
    parser.add_argument(
        "--reranker",
        type=Path,
        default=None,
        help="cross-encoder directory (default RAGSTACK_RERANKER_PATH, else the one "
        "evals.train_reranker wrote, if any): adds hybrid+rerank, its weight tuned on tuning "
        "queries the reranker was not trained on (its training.json)",
    )
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)

    svc = eval_service(args.embedder, args.reranker or default_reranker())
    name = ensure_collection(svc, args.data, quiet=args.json)
    queries, qrels = load_judgements(args.data, args.split)
    tuned = None
    tq: dict[str, str] = {}
    tr: dict[str, dict[str, int]] = {}
    if args.tune_split and (args.data / "qrels" / f"{args.tune_split}.tsv").is_file():
        tq, tr = load_judgements(args.data, args.tune_split)
        tr = {q: j for q, j in tr.items() if q not in qrels}
        tuned = svc.tune(name, tq, tr, principals=[PRINCIPAL], group_by=args.group_by)
    fusion = svc.fusion(name) if tuned else Fusion()

    results: dict[str, dict[str, float | int | str]] = {}
    rows: list[list[Cell]] = []
    runs = base_runs(fusion, tuned=tuned is not None)
    transfer = None
    if args.fusion_from is not None:
        transfer = svc.fusion(args.fusion_from.resolve().name)
        runs.append((f"hybrid_{args.fusion_from.resolve().name}_fusion", "hybrid", transfer, False))
    reranked, note = None, ""
    if svc.c.reranker is not None:
        reranked, note = tune_reranker(svc, name, args.data, fusion, tq, tr)
        runs.append(("hybrid+rerank", "hybrid", reranked, True))
        if reranked.rerank_weight < 1.0:
            alone = replace(reranked, rerank_weight=1.0)
            runs.append(("hybrid+rerank_alone", "hybrid", alone, True))

    for label, mode, f, rerank in runs:
        search = searcher(svc, name, rerank)
        search("warm up", mode, 10, f)
        m = evaluate(search, queries, qrels, mode=mode, fusion=f)
        results[label] = dict(m.as_dict())
        rows.append([label, m.ndcg_at_10, m.recall_at_100, m.mrr_at_10, m.p50_ms, m.p95_ms])
    rep.table(
        f"{name} ({args.split}: {results['bm25']['queries']} queries), chunks -> documents by "
        f"first chunk; embedder {svc.c.embedder.model_id}",
        ["mode", "nDCG@10", "recall@100", "MRR@10", "p50 ms*", "p95 ms*"],
        rows,
    )
    rep.say("* one search of the top 200 chunks (for recall@100 over documents), not a top 10")
    if tuned is not None:
        rep.say(
            f"fusion tuned on {args.tune_split} ({len(tr)} queries not in {args.split}): "
            f"{tuned.best} (nDCG@10 {tuned.best_ndcg:.4f} there; RRF k=60 gave "
            f"{tuned.default_ndcg:.4f})"
        )
    else:
        rep.say(f"fusion: {fusion} (no {args.tune_split or 'tuning'} split to tune on)")
    if transfer is not None:
        rep.say(f"fusion tuned for {args.fusion_from}: {transfer}")
    if note:
        rep.say(note)
    final = reranked or fusion
    results["fusion"] = {"tuned_on": args.tune_split if tuned else "", **vars_of(final)}
    rep.final(results)


Run = tuple[str, Mode, Fusion | None, bool]  # label, mode, fusion, rerank


def base_runs(fusion: Fusion, *, tuned: bool) -> list[Run]:
    """bm25, dense, hybrid; hybrid without group evidence if it has some; RRF k=60 if tuned."""
    from dataclasses import replace

    runs: list[Run] = [
        ("bm25", "bm25", None, False),
        ("dense", "dense", None, False),
        ("hybrid", "hybrid", fusion, False),
    ]
    if fusion.grouped:
        ungrouped = replace(fusion, group_by="", group_weight=0)
        runs.append(("hybrid_ungrouped", "hybrid", ungrouped, False))
    if tuned and fusion != Fusion():
        runs.append(("hybrid_rrf60", "hybrid", Fusion(), False))
    return runs


def searcher(
    svc: Ragstack, name: str, rerank: bool
) -> Callable[[str, Mode, int, Fusion | None], list[Hit]]:
    from evals.collections import PRINCIPAL

    def search(text: str, mode: Mode, depth: int, f: Fusion | None) -> list[Hit]:
        return svc.search(
            name, text, principals=[PRINCIPAL], mode=mode, top_k=depth, fusion=f, rerank=rerank
        ).hits

    return search


def tune_reranker(
    svc: Ragstack,
    name: str,
    data: Path,
    fusion: Fusion,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
) -> tuple[Fusion, str]:
    """``fusion`` with the reranker's weight tuned on ``queries`` minus those the reranker was
    trained on: the ``train_query_ids`` of its ``training.json`` when that record's data is
    this dataset (same ``queries.jsonl`` bytes); a reranker trained on this dataset that does
    not list its queries is not tuned."""
    from dataclasses import replace

    from evals.collections import PRINCIPAL
    from ragstack.embedding import file_sha256

    reranker = svc.reranker()
    untuned = replace(fusion, rerank_weight=1.0, rerank_model="")
    seen: set[str] = set()
    record = Path(str(svc.settings.reranker_path)) / "training.json"
    if record.is_file():
        info = json.loads(record.read_text(encoding="utf-8"))
        trained_on = (info.get("sha256") or {}).get("queries.jsonl")
        if trained_on == file_sha256(data / "queries.jsonl"):
            if "train_query_ids" not in info:
                return untuned, f"reranker trained on {name}, no record of its queries: untuned"
            seen = set(info["train_query_ids"])
    unseen = {q: t for q, t in queries.items() if q in qrels and q not in seen}
    if not unseen:
        return untuned, "reranker weight untuned (no unseen queries)"
    result = svc.tune_rerank(name, unseen, qrels, principals=[PRINCIPAL], fusion=fusion)
    trials = ", ".join(f"{w:.1f}: {n:.4f}" for w, n in result.trials)
    return svc.fusion(name), (
        f"reranker {reranker.model_id} weight tuned on {len(unseen)} queries it never saw: "
        f"{result.weight:.1f} (nDCG@10 by weight {trials})"
    )


def vars_of(fusion: object) -> dict[str, float | int | str]:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(fusion) and not isinstance(fusion, type)
    return {k: v for k, v in asdict(fusion).items() if isinstance(v, int | float | str)}


if __name__ == "__main__":
    main()
