"""``ragstack reembed``: move a collection to another embedding model while it serves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ragstack.cli.common import app, bar_columns, console, emit, service


@app.command("reembed")
def reembed(
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection.")],
    embedder: Annotated[
        str | None,
        typer.Option(
            help="The model to move to: a model id (as `collections list` shows them) or a "
            "backend name as RAGSTACK_EMBEDDER takes it (int8, sentence-transformers, "
            "onnx-int8, hashing).",
        ),
    ] = None,
    model_path: Annotated[
        Path | None,
        typer.Option(help="A local model directory (with a backend name: that model)."),
    ] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Show the collection's latest re-embed and exit.")
    ] = False,
    cancel: Annotated[
        bool,
        typer.Option("--cancel", help="Drop a stopped re-embed's shadow vectors and index."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Re-embed a collection with another model in the background of its searches, then
    switch to it in one transaction; run it again to resume one that was killed."""
    svc = service()
    if status or cancel:
        run = svc.cancel_reembed(collection) if cancel else svc.reembed_status(collection)
        _show(run.to_dict() if run is not None else None, as_json)
        return
    if embedder is None:
        raise typer.BadParameter("give --embedder (or --status, --cancel)")
    from rich.progress import Progress

    if as_json or not console.is_terminal:
        run = svc.reembed(collection, embedder, model_path=model_path)
    else:
        with Progress(*bar_columns("reembed", "chunks"), console=console) as bar:
            task = bar.add_task("reembed", total=None)
            run = svc.reembed(
                collection,
                embedder,
                model_path=model_path,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    _show(run.to_dict(), as_json)
    if run.status != "completed":
        raise typer.Exit(3)


def _show(run: dict[str, Any] | None, as_json: bool) -> None:
    if as_json:
        emit(True, run)
        return
    if run is None:
        console.print("no re-embed yet")
        return
    table = Table(title=f"re-embed {run['id']}", title_justify="left", show_header=False)
    report = run["report"]
    for key, value in (
        ("status", run["status"]),
        ("from", run["from_model"]),
        ("to", f"{run['model_id']} (dim {run['dim']})"),
        ("chunks", f"{run['done']} / {run['total']}"),
        ("embedded / reused", f"{run['embedded']} / {run['reused']}"),
        ("re-chunked", _rechunked(report.get("rechunk"))),
        ("check", "ok" if report.get("ok") else ("-" if not report else "[red]FAILED[/]")),
        ("recall@10", report.get("recall_at_10", "-")),
        ("message", run["message"] or "-"),
    ):
        table.add_row(key, str(value))
    console.print(table)


def _rechunked(counts: dict[str, int] | None) -> str:
    """Documents re-chunked for the new model's window, and their chunks before -> after."""
    if not counts or not counts.get("documents"):
        return "-"
    return (
        f"{counts['documents']} documents: {counts['chunks_before']} -> "
        f"{counts['chunks_after']} chunks"
    )
