"""What every command shares: the app, the console, the service, output and progress."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(
    name="ragstack",
    help="Retrieval-augmented generation: safe ingest, ACL-filtered hybrid search, cited answers.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, pwsh
)
console = Console()  # command output: stdout
errors = Console(stderr=True)  # errors and diagnostics: stderr, so `--json | jq` sees JSON only

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


def _installed_version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("ragstack")


def _print_version(value: bool) -> None:
    if value:
        print(_installed_version())
        raise typer.Exit()


# What the root options chose, for commands that configure logging their own way (serve).
options: dict[str, Any] = {}


@app.callback()
def root(
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="debug, info, warning, error or critical (default RAGSTACK_LOG_LEVEL, else "
            "warning; info for serve). Logs go to stderr.",
            case_sensitive=False,
        ),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed ragstack version and exit.",
        ),
    ] = False,
) -> None:
    """ragstack: point it at your documents, then search and ask with citations."""
    options["log_level"] = log_level
    configure_logging(log_level, default="warning")


def configure_logging(level: str | None, *, default: str) -> None:
    """Logging for a command: ``level``, else RAGSTACK_LOG_LEVEL, else ``default``; in
    RAGSTACK_LOG_FORMAT. A bad level is a usage error."""
    from ragstack import logs
    from ragstack.config import Settings

    settings = Settings()
    chosen = (level or settings.log_level or default).lower()
    if chosen not in logs.LEVELS:
        raise typer.BadParameter(
            f"use one of {', '.join(logs.LEVELS)}, not {level!r}", param_hint="--log-level"
        )
    logs.configure(chosen, settings.log_format)


@app.command()
def version() -> None:
    """Print the installed ragstack version (also: ragstack --version)."""
    print(_installed_version())


# -- shared plumbing ----------------------------------------------------------------------------


def service() -> Any:
    from ragstack.app import build
    from ragstack.config import Settings

    return build(Settings())


def principal_of(as_principal: str | None) -> str:
    from ragstack.config import Settings

    return as_principal or Settings().principal


def emit(as_json: bool, payload: object) -> None:
    if as_json:
        print(json.dumps(payload, indent=2, default=str))


def bar_columns(label: str = "{task.description}", unit: str = "") -> list[Any]:
    """A progress bar's columns: the label, bar, done / total (``unit``), elapsed, remaining."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    unit_column = [TextColumn(unit)] if unit else []
    return [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), *unit_column,
            TimeElapsedColumn(), TimeRemainingColumn()]  # fmt: skip


@contextmanager
def bar(label: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar fed with ``(done, total)``; a no-op off a terminal."""
    if not enabled:
        yield lambda _done, _total: None
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


class RichProgress:
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


# -- collections --------------------------------------------------------------------------------


def principals_of(as_principals: list[str] | None) -> list[str]:
    return list(as_principals) if as_principals else [principal_of(None)]


def meta_pairs(pairs: list[str] | None) -> dict[str, Any]:
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


def when(value: str | None, option: str) -> Any:
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
