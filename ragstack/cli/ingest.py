"""``ragstack ingest``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ragstack.cli.common import RichProgress, app, console, emit, principal_of, service

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
    ocr: Annotated[
        str | None,
        typer.Option(
            help="The collection's OCR from now on: `auto` (images, scanned pages, pictures), "
            "`always` (every PDF page too) or `off`; documents it affects are parsed again "
            "(default: the collection's, else RAGSTACK_OCR).",
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
    svc = service()
    request = IngestRequest(
        collection=collection,
        sources=[
            SourceSpec(s, tuple(include or ()), tuple(exclude or ()), crawl_depth, sql)
            for s in sources
        ],
        allow=tuple(allow or ()),
        public=public,
        tenant=tenant,
        trusted=True,  # the operator's own command (RAGSTACK_CLI_FETCH_PRIVATE decides)
        delete_missing=not keep_missing,
        pii_mode=pii_mode,
        pii_ner=pii_ner,
        executor=executor,
        ray_address=ray_address,
        ocr=ocr,
    )
    progress = RichProgress(enabled=not as_json and console.is_terminal)
    summary = svc.ingest(request, principal=principal_of(as_principal), progress=progress)
    payload = {
        "run_id": summary.run_id,
        "collection": summary.collection,
        **summary.counts(),
        "seconds": round(summary.seconds, 3),
        "ocr_seconds": round(summary.ocr_seconds, 3),
        "recovered": summary.recovered,
        "problems": [{"uri": p.uri, "kind": p.kind, "reason": p.reason} for p in summary.problems],
    }
    if as_json:
        emit(True, payload)
        return
    table = Table(
        title=f"ingest run {summary.run_id} into {summary.collection!r} ({summary.seconds:.1f} s)",
        title_justify="left",
    )
    columns = ("ingested", "updated", "acl_updated", "unchanged", "deleted", "skipped", "failed",
               "chunks")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    table.add_row(*(str(payload[c]) for c in columns))
    console.print(table)
    if summary.ocr_pages:
        console.print(
            f"OCR read {summary.ocr_pages:,} pages and images in {summary.ocr_seconds:.1f} s "
            f"({summary.ocr_pages / max(summary.ocr_seconds, 1e-9):.2f} pages/s per worker)"
        )
    if summary.problems:
        problems = Table(title="not ingested", title_justify="left")
        for col in ("file", "kind", "reason"):
            problems.add_column(col, overflow="fold")
        for p in summary.problems:
            problems.add_row(p.uri, p.kind, p.reason)
        console.print(problems)
