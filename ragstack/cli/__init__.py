"""The ``ragstack`` command line. Commands call the service layer; errors map to exit codes
here (``main``), in one place. One module per group of commands; ``common`` holds the app."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.markup import escape

from ragstack.cli import (
    adapt,
    admin,
    agents,
    collections,
    demo,
    documents,
    ingest,
    query,
    reembed,
    tune,
)
from ragstack.cli.common import EXIT_CODES, app, errors
from ragstack.errors import RagstackError

__all__ = ["app", "main"]
# registered on import
_COMMANDS = (adapt, admin, agents, collections, demo, documents, ingest, query, reembed, tune)


def _fail(code: str, message: str) -> NoReturn:
    """The error on stderr (stdout carries only a command's output: ``--json | jq`` keeps
    working), and its exit code."""
    errors.print(f"[red]error[/] ({code}): {escape(message)}", highlight=False)
    sys.exit(EXIT_CODES.get(code, 1))


def main() -> None:
    try:
        app()
    except RagstackError as exc:
        _fail(exc.code, str(exc))
    except Exception as exc:
        from pydantic import ValidationError
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, ValidationError) and exc.title == "Settings":
            where = "; ".join(
                f"RAGSTACK_{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            _fail("config_error", f"invalid settings: {where}")
        if not isinstance(exc, OperationalError):
            raise
        reason = (str(exc.orig).strip().splitlines() or ["no reason given"])[0]
        _fail("unavailable", f"cannot use the database: {reason}")
