"""The ``ragstack`` command line. Commands call the service layer; errors map to exit codes here."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ragstack.errors import RagstackError

app = typer.Typer(
    name="ragstack",
    help="Retrieval-augmented generation: safe ingest, ACL-filtered hybrid search, cited answers.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()

EXIT_CODES: dict[str, int] = {
    "config_error": 78,
    "not_found": 4,
    "conflict": 5,
    "invalid_input": 2,
    "permission_denied": 6,
    "unavailable": 69,
    "index_integrity": 3,
}


@app.callback()
def root() -> None:
    """ragstack: point it at your documents, then search and ask with citations."""


@app.command()
def version() -> None:
    """Print the installed ragstack version."""
    from importlib.metadata import version as dist_version

    print(dist_version("ragstack"))


@app.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Build the indexes over the bundled handbook and run a few searches (no setup needed)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ragstack.demo import run_demo
    from ragstack.embedding import SentenceTransformerEmbedder

    with console.status("loading the packaged MiniLM embedder and building indexes..."):
        passages, results, timings = run_demo(SentenceTransformerEmbedder())
    if as_json:
        payload = {
            "passages": len(passages),
            "timings": timings,
            "results": {
                q: [
                    {
                        "mode": h.mode,
                        "rank": h.rank,
                        "score": h.score,
                        "doc": h.passage.doc,
                        "section": h.passage.section,
                    }
                    for h in hits
                ]
                for q, hits in results.items()
            },
        }
        print(json.dumps(payload, indent=2))
        return
    console.print(
        f"Indexed [bold]{len(passages)}[/] passages from examples/handbook "
        f"(embedding took {timings['embed_s']:.2f} s)."
    )
    for query, hits in results.items():
        table = Table(title=f"“{query}”", title_justify="left", show_lines=False)
        for col in ("mode", "#", "score", "document", "section"):
            table.add_column(col)
        for h in hits:
            table.add_row(h.mode, str(h.rank), f"{h.score:.3f}", h.passage.doc, h.passage.section)
        console.print(table)


def main() -> None:
    try:
        app()
    except RagstackError as exc:
        console.print(f"[red]error[/] ({exc.code}): {exc}")
        sys.exit(EXIT_CODES.get(exc.code, 1))
