"""Operator commands: ``ragstack index check``, ``ragstack db ...``, ``ragstack keys ...``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ragstack.cli.common import app, console, emit, service

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
    svc = service()
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
        emit(True, payload)
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
        emit(True, {"database": shown, "from": before, "to": after})
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
        emit(True, {"database": shown, "current": found, "head": newest})
    else:
        state = "up to date" if found == newest else "needs `ragstack db upgrade`"
        console.print(f"{shown}: schema {found or 'none'} (newest {newest}): {state}")


keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _keys() -> Any:
    from ragstack.access import Keys

    return Keys(service().store)


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
        emit(True, {"key": info.to_dict(), "secret": secret})
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
        emit(True, keys)
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
        emit(True, info.to_dict())
    else:
        console.print(f"revoked {info.key_id} ({info.principal})")
