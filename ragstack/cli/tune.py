"""``ragstack tune``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ragstack.cli.common import AsOption, app, bar, console, emit, principals_of, service


@app.command()
def tune(
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection.")],
    data: Annotated[
        Path,
        typer.Option(
            help="Folder with queries.jsonl and qrels/<split>.tsv (BEIR layout); qrels name "
            "documents by URI or by its last path segment."
        ),
    ],
    split: Annotated[
        str, typer.Option(help="Judgements to tune on (never your test split).")
    ] = "train",
    group_by: Annotated[
        str,
        typer.Option(
            help="Document metadata key naming a parent (e.g. the id of the record a section "
            "came from): also tune how much a match in one part lifts the parts beside it."
        ),
    ] = "",
    rerank: Annotated[
        bool,
        typer.Option(
            help="Then tune the reranker's share of a reranked hit's score on the same queries "
            "(RAGSTACK_RERANKER_PATH; use queries the reranker was not trained on)."
        ),
    ] = False,
    as_principals: AsOption = None,
    dry_run: Annotated[bool, typer.Option(help="Report, but keep the current fusion.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Choose the collection's hybrid fusion (RRF k, or score weights) from judged queries,
    and with --rerank the weight of the reranker against it."""
    from ragstack.evaluation import load_judgements

    queries, qrels = load_judgements(data, split)
    svc = service()
    if rerank:
        svc.reranker()  # a ConfigError without one, before anything is tuned or stored
    before = svc.fusion(collection)
    with bar("tune", enabled=not as_json and console.is_terminal) as advance:
        result = svc.tune(
            collection,
            queries,
            qrels,
            principals=principals_of(as_principals),
            group_by=group_by,
            apply=not dry_run,
            progress=advance,
        )
    reranked = None
    if rerank:
        with bar("rerank", enabled=not as_json and console.is_terminal) as advance:
            reranked = svc.tune_rerank(
                collection,
                queries,
                qrels,
                principals=principals_of(as_principals),
                fusion=result.best,
                apply=not dry_run,
                progress=advance,
            )
    payload = {
        "collection": collection,
        "split": split,
        "queries": sum(1 for q in queries if q in qrels),
        "before": json.loads(before.to_json()),
        "best": json.loads(result.best.to_json()),
        "best_ndcg_at_10": round(result.best_ndcg, 4),
        "rrf60_ndcg_at_10": round(result.default_ndcg, 4),
        "applied": not dry_run,
        # a weight tuned against the old fusion does not carry over to the new one
        "rerank_weight_reset": reranked is None and not dry_run and before.rerank_weight != 1.0,
    }
    if reranked is not None:
        payload["rerank"] = {
            "weight": reranked.weight,
            "best_ndcg_at_10": round(reranked.best_ndcg, 4),
            "first_stage_ndcg_at_10": round(reranked.first_stage_ndcg, 4),
            "reranker_alone_ndcg_at_10": round(reranked.reranker_ndcg, 4),
        }
    if as_json:
        emit(True, payload)
        return
    console.print(
        f"best fusion on {split} ({payload['queries']} queries): [bold]{result.best}[/]\n"
        f"nDCG@10 {result.best_ndcg:.4f} (RRF k=60: {result.default_ndcg:.4f}); "
        + ("stored for this collection" if not dry_run else "not stored (--dry-run)")
    )
    if payload["rerank_weight_reset"]:
        console.print("the reranker weight is back to 1: run `ragstack tune --rerank` to tune it")
    if reranked is not None:
        console.print(
            f"reranker weight [bold]{reranked.weight:.1f}[/]: nDCG@10 {reranked.best_ndcg:.4f} "
            f"(first stage alone {reranked.first_stage_ndcg:.4f}, reranker alone "
            f"{reranked.reranker_ndcg:.4f})"
        )
