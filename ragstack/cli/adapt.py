"""``ragstack adapt``: fine-tune a collection's embedder on its own documents (no judged
queries), adopted by live re-embed only if a check it did not train on says it is better."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from ragstack.adaptation import PAIR_KINDS, AdaptConfig
from ragstack.cli.common import app, bar_columns, console, emit, service
from ragstack.errors import InputError

_STAGES = {
    "pairs": "mining hard negatives",
    "gate": "gate (before / after)",
    "train": "training",
    "save": "saving",
}


@app.command("adapt")
def adapt(
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection.")],
    pairs: Annotated[
        str,
        typer.Option(
            help=f"Pair kinds to train on, comma-separated ({', '.join(PAIR_KINDS)}), or auto: "
            "titles and headings when the documents have them, else sentence -> rest of "
            "passage (ict).",
        ),
    ] = "auto",
    max_pairs: Annotated[
        int | None, typer.Option(help="Pairs sampled (default RAGSTACK_ADAPT_MAX_PAIRS).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Pairs per step (in-batch negatives).")
    ] = AdaptConfig.batch_size,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = AdaptConfig.lr,
    epochs: Annotated[int, typer.Option(help="Passes over the pairs.")] = AdaptConfig.epochs,
    adopt: Annotated[
        bool | None,
        typer.Option(
            "--adopt/--no-adopt",
            help="Adopt the model if its gate passes (default RAGSTACK_ADAPT_ADOPT).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Adopt the model whatever its gate says.")
    ] = False,
    all_documents: Annotated[
        bool,
        typer.Option(
            "--all-documents",
            help="Train on every document, not only those every caller may read (the model "
            "may then reflect text some readers of the collection cannot see).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seeds sampling, the held-out split and torch.")] = 13,
    threads: Annotated[int, typer.Option(help="torch threads.")] = AdaptConfig.threads,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Fine-tune the collection's embedder on pairs its documents carry (title -> body,
    heading -> section, sentence -> rest of its passage) with BM25 hard negatives; write it
    under the data dir with training.json; adopt it by live re-embed if a held-out check of
    another pair kind improves. Needs the torch extra."""
    svc = service()
    kinds = () if pairs.strip() == "auto" else tuple(k.strip() for k in pairs.split(",") if k)
    try:
        cfg = AdaptConfig(
            pairs=kinds,
            max_pairs=max_pairs or svc.settings.adapt_max_pairs,
            batch_size=batch_size,
            lr=lr,
            epochs=epochs,
            margin=svc.settings.adapt_margin,
            seed=seed,
            threads=threads,
        )
    except InputError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with _bars(enabled=not as_json and console.is_terminal) as (stages, reembedding):
        result = svc.adapt(
            collection,
            cfg,
            adopt=adopt,
            force=force,
            all_documents=all_documents,
            progress=stages,
            reembed_progress=reembedding,
        )
    _show(result.to_dict(), as_json)


@contextmanager
def _bars(
    *, enabled: bool
) -> Iterator[tuple[Callable[[str, int, int], None], Callable[[int, int], None]]]:
    """Progress of each stage (a bar per stage) and of the adopting re-embed."""
    if not enabled:
        yield (lambda _s, _d, _t: None), (lambda _d, _t: None)
        return
    from rich.progress import Progress

    with Progress(*bar_columns(), console=console) as bar:
        tasks: dict[str, Any] = {}

        def stage(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(_STAGES.get(name, name), total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield stage, lambda done, total: stage("re-embed (adopting)", done, total)


def _show(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(True, result)
        return
    gate = result["gate"]
    table = Table(title=f"adapt {result['collection']}", title_justify="left", show_header=False)
    for key, value in (
        ("model", result["model_dir"]),
        ("model id", result["model_id"]),
        ("pairs", ", ".join(f"{k} {n}" for k, n in result["pairs"].items())),
        (
            "gate",
            f"{gate['kind']}: MRR@10 {gate['before']} -> {gate['after']} ({gate['delta']:+})",
        ),
        ("adopted", f"{'yes' if result['adopted'] else 'no'}: {result['reason']}"),
        ("train s / total s", f"{result['train_s']} / {result['total_s']}"),
    ):
        table.add_row(key, str(value))
    console.print(table)
