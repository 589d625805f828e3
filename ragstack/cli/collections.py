"""``ragstack collections ...``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ragstack.cli.common import app, console, emit, principal_of, service

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
    svc = service()
    rows = []
    for c in svc.collections():
        docs, chunks = svc.store.count_documents(c.id)
        rows.append({**_collection_dict(c), "documents": docs, "chunks": chunks})
    if as_json:
        emit(True, rows)
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
    info = service().create_collection(
        name,
        owner=principal_of(as_principal),
        public=public,
        allow=tuple(allow or ()),
        tenant=tenant,
        vector_backend=vector_backend,
        pii_mode=pii_mode,
        pii_ner=pii_ner,
    )
    emit(as_json, _collection_dict(info))
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
    service().delete_collection(name)
    console.print(f"deleted collection [bold]{name}[/]")
