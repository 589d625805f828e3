"""The ``ragstack`` command line. Commands call the service layer; errors map to exit codes here."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

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
    "unauthenticated": 6,
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
    serve: Annotated[
        bool, typer.Option(help="End by serving the API and the admin page (until Ctrl-C).")
    ] = False,
    port: Annotated[int, typer.Option(help="Port for --serve.")] = 8000,
) -> None:
    """Ingest the bundled handbook, search it as two principals and answer a question (no
    setup needed); with --serve, then run the API with demo keys."""
    from ragstack.demo import DEMO_QUESTION, run_demo

    svc = _service()
    principal = _principal(None)
    result = run_demo(svc, principal, _RichProgress(enabled=not as_json and console.is_terminal))
    s = result.summary
    payload = {
        "data_dir": str(svc.settings.data_dir.resolve()),
        "collection": s.collection,
        "ingest": {**s.counts(), "seconds": round(s.seconds, 2)},
        "searches": [
            {
                "query": q,
                "as": list(who),
                "hits": [
                    {
                        "score": round(h.score, 4),
                        "uri": h.uri,
                        "section": h.section,
                        "text": h.text[:200],
                    }
                    for h in hits
                ],
            }
            for q, who, hits in result.searches
        ],
        "answer": {"question": DEMO_QUESTION, **result.answer.to_dict()},
    }
    if as_json:
        _emit(True, payload)
        return
    console.print(
        f"Ingested examples/handbook into [bold]{s.collection}[/] at "
        f"{payload['data_dir']}: {s.ingested} new, {s.updated} updated, "
        f"{s.unchanged} unchanged, {s.chunks} chunks ({s.seconds:.1f} s)."
    )
    for query, who, hits in result.searches:
        table = Table(title=f"“{query}” as {' + '.join(who)}", title_justify="left")
        for col in ("score", "document", "section", "text"):
            table.add_column(col, overflow="fold")
        for h in hits:
            table.add_row(
                f"{h.score:.4f}",
                Path(h.uri).name,
                h.section,
                h.text[:90] + ("…" if len(h.text) > 90 else ""),
            )
        if not hits:
            table.add_row("-", "(nothing this principal may read)", "", "")
        console.print(table)
    console.print(
        "benefits.md is readable by group:hr only (examples/handbook/"
        "benefits.md.acl.json): compare the last two searches."
    )
    console.print(f"\n[bold]Q:[/] {DEMO_QUESTION}")
    _print_answer(result.answer, streamed=False)
    if serve:
        _serve_demo(svc, s.collection, port)


def _serve_demo(svc: Any, collection: str, port: int) -> None:
    """Demo keys (an admin, a reader in group:hr), the URLs, a sample curl; then the API."""
    import uvicorn

    from ragstack.access import Keys
    from ragstack.api import create_app

    keys = Keys(svc.store)
    for old in keys.list():  # one live pair of demo keys at a time
        if old.name in ("demo admin", "demo reader") and old.revoked_at is None:
            keys.revoke(old.key_id)
    _, admin = keys.create("user:demo-admin", role="admin", name="demo admin")
    _, reader = keys.create("user:demo", groups=["group:hr"], name="demo reader")
    url = f"http://127.0.0.1:{port}"
    body = json.dumps({"collection": collection, "query": "vacation carry over"})
    print(  # plain print: a terminal-width wrap would break the keys and the command
        f"\nAPI {url} (OpenAPI {url}/docs)\n"
        f"admin page {url}/admin (log in with the demo admin key)\n"
        f"  demo admin key:  {admin}\n"
        f"  demo reader key: {reader}  (user:demo, group:hr)\n"
        f"try:\n  curl -s {url}/v1/search -H 'Authorization: Bearer {reader}' "
        f"-H 'Content-Type: application/json' -d '{body}'\n"
        "Ctrl-C stops the server.",
        flush=True,
    )
    uvicorn.run(create_app(svc), host="127.0.0.1", port=port, log_level="warning")


# -- shared plumbing ----------------------------------------------------------------------------


def _service() -> Any:
    from ragstack.app import build
    from ragstack.config import Settings

    return build(Settings())


def _principal(as_principal: str | None) -> str:
    from ragstack.config import Settings

    return as_principal or Settings().principal


def _emit(as_json: bool, payload: object) -> None:
    if as_json:
        print(json.dumps(payload, indent=2, default=str))


@contextmanager
def _bar(label: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar fed with ``(done, total)``; a no-op off a terminal."""
    if not enabled:
        yield lambda _done, _total: None
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


class _RichProgress:
    """Documents and chunks with rate and ETA on a terminal; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self.chunks = 0

    def start(self, total: int | None) -> None:
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("docs  {task.fields[chunks]} chunks  {task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("ingest", total=total, chunks=0, rate="")

    def advance(self, documents: int, chunks: int) -> None:
        if self._progress is None:
            return
        self.chunks += chunks
        task = self._progress.tasks[0]
        rate = f"{task.speed:,.1f} docs/s" if task.speed else ""
        self._progress.update(self._task, advance=documents, chunks=self.chunks, rate=rate)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()


# -- ingest -------------------------------------------------------------------------------------


@app.command()
def ingest(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Files, folders, URLs or sitemap.xml URLs, BEIR corpus folders/corpus.jsonl "
            "files, or database URLs (with --sql-query)."
        ),
    ],
    collection: Annotated[
        str, typer.Option("--collection", "-c", help="Target collection (created if missing).")
    ],
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="Principal allowed to "
            "read what has no ACL of its own (user:NAME, group:NAME); repeatable.",
        ),
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Make documents without an ACL readable by everyone.")
    ] = False,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="Glob of files to take from folders; repeatable."),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Glob of files to leave out; repeatable.")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant the documents belong to.")] = None,
    crawl_depth: Annotated[
        int,
        typer.Option(
            help="For URLs: follow same-site links this many clicks deep (robots.txt respected)."
        ),
    ] = 0,
    sql_query: Annotated[
        str | None,
        typer.Option(
            help="For a database URL (sqlite:///crm.db, postgresql://...): one document per row "
            "of this query.",
            rich_help_panel="Database sources",
        ),
    ] = None,
    sql_text: Annotated[
        list[str] | None,
        typer.Option(
            help="Column(s) holding the text; repeatable.", rich_help_panel="Database sources"
        ),
    ] = None,
    sql_id: Annotated[
        str,
        typer.Option(help="Column with each row's stable id.", rich_help_panel="Database sources"),
    ] = "id",
    sql_title: Annotated[
        str | None, typer.Option(help="Column with the title.", rich_help_panel="Database sources")
    ] = None,
    sql_meta: Annotated[
        list[str] | None,
        typer.Option(
            help="Columns kept as metadata; repeatable.", rich_help_panel="Database sources"
        ),
    ] = None,
    sql_acl: Annotated[
        str | None,
        typer.Option(
            help="Column with each row's ACL (JSON or comma-separated principals).",
            rich_help_panel="Database sources",
        ),
    ] = None,
    sql_name: Annotated[
        str | None,
        typer.Option(
            help="Names the rows in their URIs (default: the table queried); keep it stable.",
            rich_help_panel="Database sources",
        ),
    ] = None,
    keep_missing: Annotated[
        bool,
        typer.Option(
            "--keep-missing", help="Do not delete documents that disappeared from the sources."
        ),
    ] = False,
    pii_mode: Annotated[
        str | None,
        typer.Option(help="New collection's PII mode: mask, pseudonym or off (RAGSTACK_PII_MODE)."),
    ] = None,
    pii_ner: Annotated[
        bool | None,
        typer.Option(
            "--pii-ner/--no-pii-ner",
            help="New collection: also redact person names and places (spaCy NER, slower).",
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            help="Where documents are parsed, redacted, chunked and embedded: `local` (this "
            "process) or `ray` (Ray Data workers; commits stay here)."
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join with --executor ray (default: a local Ray)."),
    ] = None,
    as_principal: Annotated[
        str | None, typer.Option("--as", help="Act as this principal (default RAGSTACK_PRINCIPAL).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary.")] = False,
) -> None:
    """Ingest documents: parse, redact PII, chunk, embed, index. Incremental and crash-safe."""
    from ragstack.service import IngestRequest, SourceSpec, SqlQuery

    if public and allow:
        raise typer.BadParameter("use --public or --allow, not both")
    sql = None
    if sql_query is not None:
        if not sql_text:
            raise typer.BadParameter("--sql-query needs at least one --sql-text column")
        sql = SqlQuery(
            sql_query,
            tuple(sql_text),
            id_column=sql_id,
            title_column=sql_title,
            metadata_columns=tuple(sql_meta or ()),
            acl_column=sql_acl,
            name=sql_name,
        )
    svc = _service()
    request = IngestRequest(
        collection=collection,
        sources=[
            SourceSpec(s, tuple(include or ()), tuple(exclude or ()), crawl_depth, sql)
            for s in sources
        ],
        allow=tuple(allow or ()),
        public=public,
        tenant=tenant,
        delete_missing=not keep_missing,
        pii_mode=pii_mode,
        pii_ner=pii_ner,
        executor=executor,
        ray_address=ray_address,
    )
    progress = _RichProgress(enabled=not as_json and console.is_terminal)
    summary = svc.ingest(request, principal=_principal(as_principal), progress=progress)
    payload = {
        "run_id": summary.run_id,
        "collection": summary.collection,
        **summary.counts(),
        "seconds": round(summary.seconds, 3),
        "recovered": summary.recovered,
        "problems": [{"uri": p.uri, "kind": p.kind, "reason": p.reason} for p in summary.problems],
    }
    if as_json:
        _emit(True, payload)
        return
    table = Table(
        title=f"ingest run {summary.run_id} into {summary.collection!r} ({summary.seconds:.1f} s)",
        title_justify="left",
    )
    for col in ("ingested", "updated", "unchanged", "deleted", "skipped", "failed", "chunks"):
        table.add_column(col, justify="right")
    table.add_row(
        *(
            str(payload[c])
            for c in ("ingested", "updated", "unchanged", "deleted", "skipped", "failed", "chunks")
        )
    )
    console.print(table)
    if summary.problems:
        problems = Table(title="not ingested", title_justify="left")
        for col in ("file", "kind", "reason"):
            problems.add_column(col, overflow="fold")
        for p in summary.problems:
            problems.add_row(p.uri, p.kind, p.reason)
        console.print(problems)


# -- collections --------------------------------------------------------------------------------


def _principals(as_principals: list[str] | None) -> list[str]:
    return list(as_principals) if as_principals else [_principal(None)]


def _meta_pairs(pairs: list[str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--meta takes KEY=VALUE, not {pair!r}")
        try:
            meta[key] = json.loads(raw)  # numbers and booleans typed; anything else a string
        except ValueError:
            meta[key] = raw
    return meta


def _when(value: str | None, option: str) -> Any:
    if value is None:
        return None
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{option} takes an ISO date or time, not {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


AsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--as",
        help="Search as this principal (user:NAME or group:NAME); repeat for a user's groups. "
        "Default RAGSTACK_PRINCIPAL.",
    ),
]


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
        _meta_pairs(meta),
        sources=tuple(source or ()),
        uri_prefix=uri_prefix,
        mime_types=tuple(mime or ()),
        updated_after=_when(after, "--after"),
        updated_before=_when(before, "--before"),
        exclude_instruction_like=exclude_flagged,
    )
    response = _service().search(
        collection,
        query,
        principals=_principals(as_principals),
        tenant=tenant,
        mode=mode,
        top_k=top_k,
        filters=filters,
        rerank=rerank,
    )
    hits = response.hit_dicts()
    if as_json:
        _emit(True, {
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
        table.add_row(
            str(h["rank"]),
            f"{h['score']:.4f}",
            f"{h['title'] or h['uri']}\n[dim]{h['uri']}[/]",
            where,
            flag + (text[:240] + ("…" if len(text) > 240 else "")),
        )
    console.print(table)


def _print_answer(response: Any, *, streamed: bool) -> None:
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
        tuple(_principals(as_principals)),
        tenant=tenant,
        mode=mode,  # type: ignore[arg-type]  # checked by the service
        generator=generator,
        filters=Filters(exclude_instruction_like=exclude_flagged),
        max_tokens=max_tokens,
        use_cache=not no_cache,
        rerank=rerank,
    )
    response: AnswerResponse | None = None
    for event in _service().answer(request):
        if isinstance(event, TextDelta):
            if stream and not as_json:
                console.print(event.text, end="", soft_wrap=True, highlight=False, markup=False)
        else:
            response = event
    assert response is not None
    if as_json:
        _emit(True, response.to_dict())
        return
    _print_answer(response, streamed=stream)


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
    svc = _service()
    if rerank:
        svc.reranker()  # a ConfigError without one, before anything is tuned or stored
    before = svc.fusion(collection)
    with _bar("tune", enabled=not as_json and console.is_terminal) as advance:
        result = svc.tune(
            collection,
            queries,
            qrels,
            principals=_principals(as_principals),
            group_by=group_by,
            apply=not dry_run,
            progress=advance,
        )
    reranked = None
    if rerank:
        with _bar("rerank", enabled=not as_json and console.is_terminal) as advance:
            reranked = svc.tune_rerank(
                collection,
                queries,
                qrels,
                principals=_principals(as_principals),
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
        _emit(True, payload)
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


collections_app = typer.Typer(help="List, create and delete collections.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")


def _collection_dict(c: Any) -> dict[str, Any]:
    return {
        "name": c.name,
        "owner": c.owner,
        "tenant": c.tenant,
        "embedder": c.embedder_id,
        "dim": c.dim,
        "vector_backend": c.vector_backend,
        "pii_mode": c.pii_mode,
        "pii_ner": c.pii_ner,
        "default_acl": list(c.default_acl),
        "generation": c.generation,
        "created_at": c.created_at.isoformat(),
    }


@collections_app.command("list")
def collections_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List collections with their document and chunk counts."""
    svc = _service()
    rows = []
    for c in svc.collections():
        docs, chunks = svc.store.count_documents(c.id)
        rows.append({**_collection_dict(c), "documents": docs, "chunks": chunks})
    if as_json:
        _emit(True, rows)
        return
    table = Table(title="collections", title_justify="left")
    for col in ("name", "documents", "chunks", "owner", "embedder", "vector_backend", "pii_mode"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(
                str(r[c])
                for c in (
                    "name",
                    "documents",
                    "chunks",
                    "owner",
                    "embedder",
                    "vector_backend",
                    "pii_mode",
                )
            )
        )
    console.print(table)


@collections_app.command("create")
def collections_create(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    allow: Annotated[list[str] | None, typer.Option("--allow", help="Default readers.")] = None,
    public: Annotated[bool, typer.Option("--public", help="Readable by everyone.")] = False,
    tenant: Annotated[str | None, typer.Option(help="Tenant.")] = None,
    vector_backend: Annotated[str | None, typer.Option(help="hnsw, ivfpq or exact.")] = None,
    pii_mode: Annotated[str | None, typer.Option(help="mask, pseudonym or off.")] = None,
    pii_ner: Annotated[
        bool | None, typer.Option("--pii-ner/--no-pii-ner", help="Redact names and places too.")
    ] = None,
    as_principal: Annotated[str | None, typer.Option("--as", help="Owner.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an empty collection (ingest creates one on first use, too)."""
    if vector_backend not in (None, "hnsw", "ivfpq", "exact"):
        raise typer.BadParameter("vector backend must be hnsw, ivfpq or exact")
    if pii_mode not in (None, "mask", "pseudonym", "off"):
        raise typer.BadParameter("pii mode must be mask, pseudonym or off")
    info = _service().create_collection(
        name,
        owner=_principal(as_principal),
        public=public,
        allow=tuple(allow or ()),
        tenant=tenant,
        vector_backend=vector_backend,
        pii_mode=pii_mode,
        pii_ner=pii_ner,
    )
    _emit(as_json, _collection_dict(info))
    if not as_json:
        console.print(
            f"created collection [bold]{info.name}[/] (readers: {', '.join(info.default_acl)})"
        )


@collections_app.command("delete")
def collections_delete(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a collection with all its documents and indexes."""
    if not yes and not typer.confirm(f"delete collection {name!r} and everything in it?"):
        raise typer.Exit(1)
    _service().delete_collection(name)
    console.print(f"deleted collection [bold]{name}[/]")


# -- documents ----------------------------------------------------------------------------------

documents_app = typer.Typer(help="List, show and delete documents.", no_args_is_help=True)
app.add_typer(documents_app, name="documents")


def _document_dict(d: Any) -> dict[str, Any]:
    return {
        "id": d.id,
        "source": d.source,
        "uri": d.uri,
        "title": d.title,
        "mime": d.mime,
        "version": d.version,
        "chunks": d.chunk_count,
        "bytes": d.size_bytes,
        "principals": list(d.principals),
        "pii": d.pii_counts,
        "updated_at": d.updated_at.isoformat(),
    }


@documents_app.command("list")
def documents_list(
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection.")],
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the documents of a collection."""
    docs = [_document_dict(d) for d in _service().documents(collection, limit=limit, offset=offset)]
    if as_json:
        _emit(True, docs)
        return
    table = Table(title=f"documents in {collection!r}", title_justify="left")
    for col in ("id", "uri", "chunks", "principals", "pii"):
        table.add_column(col, overflow="fold")
    for d in docs:
        table.add_row(
            str(d["id"]),
            d["uri"],
            str(d["chunks"]),
            ", ".join(d["principals"]),
            ", ".join(f"{k}={v}" for k, v in d["pii"].items()),
        )
    console.print(table)


@documents_app.command("show")
def documents_show(
    document_id: Annotated[int, typer.Argument(help="Document id.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one document with its chunks."""
    svc = _service()
    doc = _document_dict(svc.document(collection, document_id))
    doc["chunk_list"] = [
        {
            "id": c.id,
            "ordinal": c.ordinal,
            "section": c.section,
            "page": c.page,
            "span": [c.char_start, c.char_end],
            "tokens": c.token_count,
            "instruction_like": c.instruction_like,
            "text": c.text,
        }
        for c in svc.chunks(collection, document_id)
    ]
    if as_json:
        _emit(True, doc)
        return
    console.print_json(json.dumps(doc, default=str))


@documents_app.command("delete")
def documents_delete(
    document_id: Annotated[int, typer.Argument(help="Document id.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection.")],
) -> None:
    """Delete a document from SQL and every index."""
    removed = _service().delete_document(collection, document_id)
    console.print(f"deleted document {document_id} ({removed} chunks)")


# -- index --------------------------------------------------------------------------------------

index_app = typer.Typer(help="Index health.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("check")
def index_check(
    collection: Annotated[
        list[str] | None,
        typer.Option("--collection", "-c", help="Collection(s) to check; default all."),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair/--no-repair", help="Recover indexes from SQL first, as every open does."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Prove SQL and every index agree; exit code 3 when they do not."""
    svc = _service()
    names = collection or [c.name for c in svc.collections()]
    reports = [svc.check_index(n, repair=repair) for n in names]
    payload = [
        {
            "collection": r.collection,
            "ok": r.ok,
            "sql_chunks": r.sql_chunks,
            "dense": r.dense_count,
            "bm25": r.lexical_count,
            "missing_dense": r.missing_dense,
            "extra_dense": r.extra_dense,
            "missing_bm25": r.missing_lexical,
            "extra_bm25": r.extra_lexical,
            "vector_mismatches": r.vector_mismatches,
            "sampled": r.sampled,
            "recovered": vars(r.recovered),
        }
        for r in reports
    ]
    if as_json:
        _emit(True, payload)
    else:
        table = Table(title="index check", title_justify="left")
        for col in ("collection", "ok", "sql chunks", "dense", "bm25", "recovered"):
            table.add_column(col)
        for p in payload:
            rec = p["recovered"]
            rec_text = ", ".join(f"{k}={v}" for k, v in rec.items() if v) or "-"
            table.add_row(
                p["collection"],
                "yes" if p["ok"] else "[red]NO[/]",
                str(p["sql_chunks"]),
                str(p["dense"]),
                str(p["bm25"]),
                rec_text,
            )
        console.print(table)
    if not all(r.ok for r in reports):
        raise typer.Exit(3)


db_app = typer.Typer(help="The SQL schema: migrate it, show its revision.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _database() -> tuple[Any, str]:
    """The configured store (no models loaded) and its URL with the password hidden."""
    from sqlalchemy import make_url

    from ragstack.config import Settings
    from ragstack.store import Store

    settings = Settings()
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(url), make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create or migrate the schema to the newest revision (every command does this on start;
    run it once before starting several API replicas)."""
    from ragstack.store.migrate import current

    store, shown = _database()
    before = current(store.engine)
    store.create_schema()
    after = current(store.engine)
    if as_json:
        _emit(True, {"database": shown, "from": before, "to": after})
    else:
        console.print(f"{shown}: schema {before or 'none'} -> {after}")


@db_app.command("current")
def db_current(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The database's schema revision and the newest this ragstack knows."""
    from ragstack.store.migrate import current, head

    store, shown = _database()
    found, newest = current(store.engine), head()
    if as_json:
        _emit(True, {"database": shown, "current": found, "head": newest})
    else:
        state = "up to date" if found == newest else "needs `ragstack db upgrade`"
        console.print(f"{shown}: schema {found or 'none'} (newest {newest}): {state}")


keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _keys() -> Any:
    from ragstack.access import Keys

    return Keys(_service().store)


@keys_app.command("create")
def keys_create(
    principal: Annotated[str, typer.Option(help="Who the key acts as: user:NAME.")],
    group: Annotated[
        list[str] | None, typer.Option(help="A group the key's principal is in (repeatable).")
    ] = None,
    role: Annotated[str, typer.Option(help="reader, writer or admin.")] = "reader",
    name: Annotated[str, typer.Option(help="A label for lists and the audit log.")] = "",
    tenant: Annotated[str | None, typer.Option(help="Restrict the key to one tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key; its secret is printed once and only its hash is stored."""
    groups = [g if g.startswith("group:") else f"group:{g}" for g in group or []]
    info, secret = _keys().create(principal, groups=groups, role=role, name=name, tenant=tenant)
    if as_json:
        _emit(True, {"key": info.to_dict(), "secret": secret})
        return
    console.print(f"created key [bold]{info.key_id}[/] ({info.role}) for {info.principal}"
                  + (f" with {', '.join(info.groups)}" if info.groups else ""))  # fmt: skip
    console.print("secret (shown once, store it now):")
    print(secret)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """API keys (never their secrets)."""
    keys = [k.to_dict() for k in _keys().list()]
    if as_json:
        _emit(True, keys)
        return
    table = Table(title=f"{len(keys)} API keys", title_justify="left")
    for column in ("key id", "principal", "groups", "role", "name", "created", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(k["key_id"], k["principal"], ", ".join(k["groups"]), k["role"], k["name"],
                      k["created_at"][:19], (k["revoked_at"] or "")[:19])  # fmt: skip
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (not the secret).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Revoke an API key: every later request with it gets 401."""
    info = _keys().revoke(key_id)
    if as_json:
        _emit(True, info.to_dict())
    else:
        console.print(f"revoked {info.key_id} ({info.principal})")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes (one per core serves the most searches).")
    ] = 1,
) -> None:
    """Run the REST API (FastAPI on uvicorn); OpenAPI docs at /docs."""
    import uvicorn

    console.print(f"ragstack API on http://{host}:{port} (OpenAPI: /docs)")
    if workers > 1:
        uvicorn.run("ragstack.api.server:app", host=host, port=port, workers=workers,
                    factory=False, log_level="warning")  # fmt: skip
        return
    from ragstack.api import create_app

    uvicorn.run(create_app(_service()), host=host, port=port, log_level="warning")


def main() -> None:
    try:
        app()
    except RagstackError as exc:
        console.print(f"[red]error[/] ({exc.code}): {exc}")
        sys.exit(EXIT_CODES.get(exc.code, 1))
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if not isinstance(exc, OperationalError):
            raise
        reason = (str(exc.orig).strip().splitlines() or ["no reason given"])[0]
        console.print(f"[red]error[/] (unavailable): cannot use the database: {reason}")
        sys.exit(EXIT_CODES["unavailable"])
