"""``ragstack search`` and ``ragstack ask``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ragstack.cli.common import (
    AsOption,
    app,
    console,
    emit,
    meta_pairs,
    principals_of,
    service,
    when,
)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection.")],
    as_principals: AsOption = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's documents.")] = None,
    mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Hits to return.")] = 10,
    source: Annotated[
        list[str] | None, typer.Option(help="Only documents from this source; repeatable.")
    ] = None,
    uri_prefix: Annotated[str | None, typer.Option(help="Only URIs starting with this.")] = None,
    mime: Annotated[list[str] | None, typer.Option(help="Only this MIME type; repeatable.")] = None,
    after: Annotated[str | None, typer.Option(help="Only documents updated since (ISO).")] = None,
    before: Annotated[str | None, typer.Option(help="Only documents updated before (ISO).")] = None,
    meta: Annotated[
        list[str] | None, typer.Option(help="Metadata KEY=VALUE that must match; repeatable.")
    ] = None,
    exclude_flagged: Annotated[
        bool,
        typer.Option(help="Leave out chunks flagged at ingest as instruction-like."),
    ] = False,
    rerank: Annotated[
        bool | None,
        typer.Option(
            "--rerank/--no-rerank",
            help="Reorder the top hits with the cross-encoder (RAGSTACK_RERANKER_PATH).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search a collection: only what the given principals may read is ever scored."""
    from ragstack.search import Filters

    filters = Filters.of(
        meta_pairs(meta),
        sources=tuple(source or ()),
        uri_prefix=uri_prefix,
        mime_types=tuple(mime or ()),
        updated_after=when(after, "--after"),
        updated_before=when(before, "--before"),
        exclude_instruction_like=exclude_flagged,
    )
    response = service().search(
        collection,
        query,
        principals=principals_of(as_principals),
        tenant=tenant,
        mode=mode,
        top_k=top_k,
        filters=filters,
        rerank=rerank,
    )
    hits = response.hit_dicts()
    if as_json:
        emit(True, {
            "query": query,
            "collection": collection,
            "mode": response.mode,
            "hits": hits,
            "timings_ms": {k: round(v, 3) for k, v in response.timings_ms.items()},
        })  # fmt: skip
        return
    table = Table(
        title=f"{len(hits)} hits for {query!r} in {collection!r} ({response.mode}, "
        f"{response.timings_ms['total_ms']:.1f} ms)",
        title_justify="left",
    )
    for column in ("#", "score", "document", "where", "text"):
        table.add_column(column, overflow="fold")
    for h in hits:
        where = " > ".join(
            x for x in (str(h["section"]), f"p. {h['page']}" if h["page"] else "") if x
        )
        text = " ".join(str(h["text"]).split())
        flag = "[yellow](instruction-like)[/] " if h["instruction_like"] else ""
        flag += "[cyan](OCR)[/] " if h["ocr"] else ""
        table.add_row(
            str(h["rank"]),
            f"{h['score']:.4f}",
            f"{h['title'] or h['uri']}\n[dim]{h['uri']}[/]",
            where,
            flag + (text[:240] + ("…" if len(text) > 240 else "")),
        )
    console.print(table)


def print_answer(response: Any, *, streamed: bool) -> None:
    """An answer, its citations (resolved and checked) and its cost, for people."""
    if streamed:
        console.print()
    else:
        console.print(response.answer, soft_wrap=True, highlight=False, markup=False)
    unique = {(c.number, c.char_start): c for c in response.citations}
    for (number, _start), c in sorted(unique.items()):
        mark = "[green]supported[/]" if c.supported else "[red]NOT SUPPORTED[/]"
        page = f", p. {c.page}" if c.page else ""
        console.print(
            f"  [{number}] {c.title or c.uri}{page}, characters {c.char_start}-{c.char_end}: "
            f"{mark}\n      [dim]{c.uri}[/]",
            highlight=False,
        )
    t = response.timings_ms
    extra = " (cached)" if response.cached else ""
    console.print(
        f"[dim]{response.generator} ({response.model}){extra}: {t.get('total_ms', 0):.0f} ms; "
        f"context {response.context_tokens_before} -> {response.context_tokens_after} tokens; "
        f"{response.usage.prompt_tokens}+{response.usage.completion_tokens} tokens[/]"
    )
    if response.unsupported_citations:
        console.print(f"[red]{response.unsupported_citations} citation(s) not supported[/]")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection.")],
    as_principals: AsOption = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's documents.")] = None,
    generator: Annotated[
        str | None,
        typer.Option(help="extractive, local or remote (default RAGSTACK_GENERATOR)."),
    ] = None,
    mode: Annotated[str, typer.Option(help="Retrieval: bm25, dense or hybrid.")] = "hybrid",
    stream: Annotated[bool, typer.Option(help="Print the answer as it is generated.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Skip the answer cache.")] = False,
    exclude_flagged: Annotated[
        bool, typer.Option(help="Do not answer from chunks flagged as instruction-like.")
    ] = False,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens.")] = None,
    rerank: Annotated[
        bool | None,
        typer.Option("--rerank/--no-rerank", help="Rerank the retrieved chunks first."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Answer a question from a collection, with verified citations."""
    from ragstack.answering import AnswerRequest, AnswerResponse
    from ragstack.generation.base import TextDelta
    from ragstack.search import Filters

    request = AnswerRequest(
        collection,
        question,
        tuple(principals_of(as_principals)),
        tenant=tenant,
        mode=mode,  # type: ignore[arg-type]  # checked by the service
        generator=generator,
        filters=Filters(exclude_instruction_like=exclude_flagged),
        max_tokens=max_tokens,
        use_cache=not no_cache,
        rerank=rerank,
    )
    response: AnswerResponse | None = None
    for event in service().answer(request):
        if isinstance(event, TextDelta):
            if stream and not as_json:
                console.print(event.text, end="", soft_wrap=True, highlight=False, markup=False)
        else:
            response = event
    assert response is not None
    if as_json:
        emit(True, response.to_dict())
        return
    print_answer(response, streamed=stream)
