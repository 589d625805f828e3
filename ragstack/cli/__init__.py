"""The ``ragstack`` command line. Commands call the service layer; errors map to exit codes
here (``main``), in one place. One module per group of commands; ``common`` holds the app."""

from __future__ import annotations

import sys

from ragstack.cli import admin, collections, demo, documents, ingest, query, tune
from ragstack.cli.common import EXIT_CODES, app, console
from ragstack.errors import RagstackError

__all__ = ["app", "main"]
_COMMANDS = (admin, collections, demo, documents, ingest, query, tune)  # registered on import


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
