"""Atomic, versioned index directories.

Layout of an index directory::

    <dir>/manifest.json        the only file that is ever replaced; names everything else
    <dir>/gen-00000007/...     files written by the save that produced generation 7
    <dir>/shared/...           immutable files reused across generations (BM25 segments)

``save`` writes a new generation next to the old one, fsyncs every file and directory,
then swaps ``manifest.json`` with an atomic ``os.replace``. A crash at any point leaves
either the old manifest (and its files) or the new one: never a mix. Files that no
manifest references any more are removed after the swap.

The manifest is JSON (never pickle) and carries a format version, the backend, the
metric, the dimension, the count and the backend's parameters; ``read_manifest``
checks it against what the caller expects and raises ``ManifestMismatchError``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from indexes.errors import CorruptIndexError, IndexStorageError, ManifestMismatchError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARED = "shared"

JsonScalar = str | int | float | bool | None
Params = dict[str, JsonScalar]


@dataclass(frozen=True)
class Manifest:
    """What an index directory holds; ``files`` maps logical names to paths in the directory."""

    backend: str
    metric: str | None
    dim: int | None
    count: int
    params: Params
    files: dict[str, str]
    generation: int = 0
    format_version: int = FORMAT_VERSION
    extra: dict[str, JsonScalar] = field(default_factory=dict)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file below ``root`` and every directory, including ``root``."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


def save_array(path: Path, array: npt.NDArray[np.generic]) -> None:
    """Write one array as ``.npy`` (never pickled)."""
    with path.open("wb") as fh:
        np.save(fh, array, allow_pickle=False)


def load_array(path: Path) -> npt.NDArray[np.generic]:
    try:
        return np.load(path, allow_pickle=False)  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise CorruptIndexError(f"cannot read index file {path}: {exc}") from exc


def _read_raw(path: Path) -> Manifest:
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise CorruptIndexError(f"no index at {path}: {MANIFEST} is missing")
    try:
        raw = json.loads(mpath.read_text(encoding="utf-8"))
        manifest = Manifest(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptIndexError(f"index at {path}: unreadable {MANIFEST}: {exc}") from exc
    if not _well_typed(manifest):
        raise CorruptIndexError(f"index at {path}: {MANIFEST} has fields of the wrong type")
    return manifest


def _well_typed(m: Manifest) -> bool:
    """Valid JSON is not yet a manifest: every field must have its declared type."""
    return (
        isinstance(m.backend, str)
        and (m.metric is None or isinstance(m.metric, str))
        and (m.dim is None or type(m.dim) is int)
        and all(type(v) is int for v in (m.count, m.generation, m.format_version))
        and isinstance(m.params, dict)
        and isinstance(m.extra, dict)
        and isinstance(m.files, dict)
        and all(isinstance(rel, str) for rel in m.files.values())
    )


def read_manifest(
    path: Path,
    *,
    backend: str,
    expect: Mapping[str, object] | None = None,
) -> Manifest:
    """Read and check ``path/manifest.json``.

    ``expect`` maps manifest fields (``metric``, ``dim``) or ``params.<name>`` to the
    value the caller requires; ``None`` values are not checked.
    """
    manifest = _read_raw(path)
    if manifest.format_version != FORMAT_VERSION:
        raise ManifestMismatchError(
            "format_version", FORMAT_VERSION, manifest.format_version, str(path)
        )
    if manifest.backend != backend:
        raise ManifestMismatchError("backend", backend, manifest.backend, str(path))
    for key, want in (expect or {}).items():
        if want is None:
            continue
        if key.startswith("params."):
            found: object = manifest.params.get(key.removeprefix("params."))
        else:
            found = getattr(manifest, key)
        if found != want:
            raise ManifestMismatchError(key, want, found, str(path))
    for rel in manifest.files.values():
        if not (path / rel).exists():
            raise CorruptIndexError(f"index at {path}: file {rel} named by the manifest is missing")
    return manifest


_SAVING: dict[Path, threading.Lock] = {}
_SAVING_GUARD = threading.Lock()


def write_index_dir(
    path: Path,
    build: Callable[[Path, Path], Manifest],
) -> Manifest:
    """One save of ``path`` at a time: threads of this process through a lock per path,
    processes through ``flock`` on ``path``'s lock file (two saves would otherwise pick the
    same generation and remove each other's files)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with _SAVING_GUARD:
            lock = _SAVING.setdefault(path.resolve(), threading.Lock())
        with lock, (path / ".save.lock").open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            return _write_index_dir(path, build)
    except OSError as exc:
        raise IndexStorageError(f"cannot save index to {path}: {exc}") from exc


def _write_index_dir(
    path: Path,
    build: Callable[[Path, Path], Manifest],
) -> Manifest:
    """Atomically replace the index at ``path``.

    ``build(gen_dir, shared_dir)`` writes the backend's files (generation-private ones into
    ``gen_dir``, immutable reusable ones into ``shared_dir`` if absent) and returns a manifest
    whose ``files`` are relative to ``path``; the generation number is filled in here.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission, read-only file system
        raise IndexStorageError(f"cannot save index to {path}: {exc}") from exc
    try:
        previous = _read_raw(path).generation if (path / MANIFEST).is_file() else 0
    except CorruptIndexError:
        previous = max((_gen_number(p) for p in path.glob("gen-*")), default=0)
    try:
        generation = previous + 1
        gen_dir = path / f"gen-{generation:08d}"
        if gen_dir.exists():  # left behind by a save that crashed before its manifest swap
            shutil.rmtree(gen_dir)
        gen_dir.mkdir()
        shared_dir = path / SHARED
        shared_dir.mkdir(exist_ok=True)
        built = build(gen_dir, shared_dir)
        manifest = Manifest(**{**asdict(built), "generation": generation})
        fsync_tree(gen_dir)
        fsync_tree(shared_dir)
        tmp = path / f"{MANIFEST}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(asdict(manifest), fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path / MANIFEST)
        _fsync_path(path)
    except OSError as exc:
        raise IndexStorageError(f"cannot save index to {path}: {exc}") from exc
    _collect_garbage(path, manifest)
    return manifest


def _gen_number(p: Path) -> int:
    try:
        return int(p.name.removeprefix("gen-"))
    except ValueError:
        return 0


def _collect_garbage(path: Path, manifest: Manifest) -> None:
    keep = {
        Path(rel).parts[0] + "/" + Path(rel).parts[1]
        for rel in manifest.files.values()
        if len(Path(rel).parts) > 1
    }
    current = f"gen-{manifest.generation:08d}"
    for old in path.glob("gen-*"):
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
    for f in (path / SHARED).glob("*"):
        if f"{SHARED}/{f.name}" not in keep:
            f.unlink(missing_ok=True)
