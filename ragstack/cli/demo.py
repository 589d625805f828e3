"""``ragstack demo`` and ``ragstack serve``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ragstack.cli.common import (
    RichProgress,
    app,
    configure_logging,
    console,
    emit,
    options,
    principal_of,
    service,
)
from ragstack.cli.query import print_answer


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
    from ragstack.demo import DEMO_QUESTION, SAMPLE_DIR, run_demo

    svc = service()
    principal = principal_of(None)
    result = run_demo(svc, principal, RichProgress(enabled=not as_json and console.is_terminal))
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
        emit(True, payload)
        return
    console.print(
        f"Ingested the sample handbook ({SAMPLE_DIR}) into [bold]{s.collection}[/] at "
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
        "benefits.md is readable by group:hr only (its sidecar benefits.md.acl.json): "
        "compare the last two searches."
    )
    console.print(f"\n[bold]Q:[/] {DEMO_QUESTION}")
    print_answer(result.answer, streamed=False)
    if serve:
        _serve_demo(svc, s.collection, port, principal)


def _serve_demo(svc: Any, collection: str, port: int, principal: str) -> None:
    """Demo keys (an admin; a reader acting as ``principal``, who ingested the handbook, and
    in group:hr), the URLs, a sample curl; then the API."""
    import uvicorn

    from ragstack.access import Keys
    from ragstack.api import create_app

    keys = Keys(svc.store)
    for old in keys.list():  # one live pair of demo keys at a time
        if old.name in ("demo admin", "demo reader") and old.revoked_at is None:
            keys.revoke(old.key_id)
    _, admin = keys.create("user:demo-admin", role="admin", name="demo admin")
    _, reader = keys.create(principal, groups=["group:hr"], name="demo reader")
    url = f"http://127.0.0.1:{port}"
    body = json.dumps({"collection": collection, "query": "vacation carry over"})
    print(  # plain print: a terminal-width wrap would break the keys and the command
        f"\nAPI {url} (OpenAPI {url}/docs)\n"
        f"admin page {url}/admin (log in with the demo admin key)\n"
        f"  demo admin key:  {admin}\n"
        f"  demo reader key: {reader}  ({principal}, group:hr)\n"
        f"try:\n  curl -s {url}/v1/search -H 'Authorization: Bearer {reader}' "
        f"-H 'Content-Type: application/json' -d '{body}'\n"
        "Ctrl-C stops the server.",
        flush=True,
    )
    uvicorn.run(create_app(svc), host="127.0.0.1", port=port, proxy_headers=False,
                **_uvicorn_logging("warning"))  # fmt: skip


def _uvicorn_logging(default: str) -> dict[str, Any]:
    """uvicorn's options that route its logs through ours (``ragstack.logs``): no logging
    config of its own, no access log of its own (the API writes one with request ids)."""
    level = options.get("log_level")
    configure_logging(level, default=default)
    import logging

    return {"log_config": None, "access_log": False,
            "log_level": logging.getLevelName(logging.getLogger().level).lower()}  # fmt: skip


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes (one per core serves the most searches).")
    ] = 1,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="debug, info (default: one access line per request), warning, error or "
            "critical; RAGSTACK_LOG_LEVEL otherwise.",
        ),
    ] = None,
) -> None:
    """Run the REST API (FastAPI on uvicorn); OpenAPI docs at /docs."""
    import uvicorn

    # Proxy headers (X-Forwarded-For/-Proto) are believed only from RAGSTACK_API_TRUSTED_PROXIES,
    # inside the app; uvicorn's own default (trust them from loopback) is off.
    if log_level:
        options["log_level"] = log_level
    logging_options = _uvicorn_logging("info")
    import logging

    logging.getLogger("ragstack.serve").info(
        "ragstack API on http://%s:%d (OpenAPI: /docs)", host, port
    )
    if workers > 1:
        import os

        # the workers import ragstack.api.server, which configures logging from the settings
        os.environ["RAGSTACK_LOG_LEVEL"] = logging_options["log_level"]
        uvicorn.run("ragstack.api.server:app", host=host, port=port, workers=workers,
                    factory=False, proxy_headers=False, **logging_options)  # fmt: skip
        return
    from ragstack.api import create_app

    uvicorn.run(create_app(service()), host=host, port=port, proxy_headers=False,
                **logging_options)  # fmt: skip
