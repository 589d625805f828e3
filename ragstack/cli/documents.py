"""``ragstack documents ...``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from ragstack.cli.common import app, console, emit, service

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
    docs = [_document_dict(d) for d in service().documents(collection, limit=limit, offset=offset)]
    if as_json:
        emit(True, docs)
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
    svc = service()
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
            "ocr": c.ocr,
            "text": c.text,
        }
        for c in svc.chunks(collection, document_id)
    ]
    if as_json:
        emit(True, doc)
        return
    console.print_json(json.dumps(doc, default=str))


@documents_app.command("delete")
def documents_delete(
    document_id: Annotated[int, typer.Argument(help="Document id.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection.")],
) -> None:
    """Delete a document from SQL and every index."""
    removed = service().delete_document(collection, document_id)
    console.print(f"deleted document {document_id} ({removed} chunks)")


acl_app = typer.Typer(help="Change who may read a document.", no_args_is_help=True)
documents_app.add_typer(acl_app, name="acl")


@acl_app.command("set")
def documents_acl_set(
    document_id: Annotated[int, typer.Argument(help="Document id.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection.")],
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="Principal who may read it (user:NAME, group:NAME); "
            "repeatable. Replaces the current readers.",
        ),
    ] = None,
    public: Annotated[bool, typer.Option("--public", help="Readable by everyone.")] = False,
    tenant: Annotated[str | None, typer.Option(help="Move it to this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Replace a document's readers (and tenant): in force for the very next search, with
    nothing re-parsed or re-embedded. A later ingest of its source sets the source's ACL."""
    if public == bool(allow):
        raise typer.BadParameter("give --allow (one or more) or --public")
    doc = service().set_document_acl(
        collection, document_id, allow=tuple(allow or ()), public=public, new_tenant=tenant
    )
    if as_json:
        emit(True, _document_dict(doc))
        return
    console.print(f"document {doc.id}: readable by {', '.join(doc.principals)}"
                  + (f" (tenant {doc.tenant})" if doc.tenant else ""))  # fmt: skip
