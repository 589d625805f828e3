"""Files under a root folder (or one file), with include/exclude globs and ACL sidecars.

* Never leaves the root: a symlink whose target resolves outside it is reported, not read;
  symlink loops are detected (each real directory is visited once).
* ACLs: ``<file>.acl.json`` beside a file, else the nearest ``.acl.json`` in its folder or a
  parent folder within the root; sidecars are not documents themselves.
* Files over ``max_bytes`` are reported with their size, not read.
* ``version`` is the SHA-256 of the content (read once, then cached for the read).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from connectors.base import (
    Acl,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    constant,
    content_version,
    guess_mime,
    load_acl,
)

SIDECAR_SUFFIX = ".acl.json"
DIR_ACL = ".acl.json"


class FilesystemConnector:
    def __init__(
        self,
        root: Path,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        max_bytes: int | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        if not self.root.exists():
            raise SourceUnavailableError(f"no such file or folder: {self.root}")
        self.real_root = self.root.resolve()
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.max_bytes = max_bytes
        self.name = f"fs:{self.real_root}"
        self._dir_acl: dict[Path, Acl | ScanError | None] = {}

    def _wanted(self, rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if self.include and not any(
            fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in self.include
        ):
            return False
        return not any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in self.exclude)

    def _inside(self, real: Path) -> bool:
        return real == self.real_root or self.real_root in real.parents

    def files(self) -> Iterator[Path | ScanError]:
        if self.root.is_file():
            yield self.root
            return
        seen_dirs: set[Path] = set()
        stack = [self.root]
        while stack:
            folder = stack.pop()
            real = folder.resolve()
            if real in seen_dirs:
                yield ScanError(
                    str(folder), "symlink_loop", "folder visited already (symlink loop)"
                )
                continue
            seen_dirs.add(real)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                yield ScanError(
                    folder.absolute().as_uri(), "unreadable", f"cannot list folder: {exc.strerror}"
                )
                continue
            for entry in entries:
                found = self._entry(entry)
                if isinstance(found, Path) and found.is_dir():
                    stack.append(found)
                elif found is not None:
                    yield found

    def _entry(self, entry: os.DirEntry[str]) -> Path | ScanError | None:
        """A folder to descend into, a file to read, a problem, or nothing (a sidecar)."""
        path = Path(entry.path)
        if entry.is_symlink():
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):
                return ScanError(
                    path.absolute().as_uri(), "unreadable", "broken or looping symlink"
                )
            if not self._inside(target):
                return ScanError(
                    str(path),
                    "outside_root",
                    "symlink points outside the ingested folder: not followed",
                )
        if entry.is_dir():
            return path
        if entry.is_file():
            if entry.name.endswith(SIDECAR_SUFFIX) or entry.name == DIR_ACL:
                return None
            return path
        return ScanError(path.absolute().as_uri(), "unsupported", "not a regular file")

    def count(self) -> int:
        """How many files a scan will consider (no file is read)."""
        return sum(1 for f in self.files() if isinstance(f, Path))

    def _acl_for(self, path: Path) -> Acl | ScanError | None:
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        if sidecar.is_file():
            return self._read_acl(sidecar)
        folder = path.parent
        while True:
            if folder not in self._dir_acl:
                candidate = folder / DIR_ACL
                self._dir_acl[folder] = self._read_acl(candidate) if candidate.is_file() else None
            found = self._dir_acl[folder]
            if found is not None or folder == self.root or self.root not in folder.parents:
                return found
            folder = folder.parent

    @staticmethod
    def _read_acl(path: Path) -> Acl | ScanError:
        try:
            return load_acl(path)
        except (OSError, ValueError) as exc:
            return ScanError(path.absolute().as_uri(), "bad_acl", f"unreadable ACL sidecar: {exc}")

    def scan(self) -> Iterator[SourceItem | ScanError]:
        for found in self.files():
            if isinstance(found, ScanError):
                yield found
                continue
            path = found
            rel = path.relative_to(self.root).as_posix() if path != self.root else path.name
            if not self._wanted(rel):
                continue
            acl = self._acl_for(path)
            if isinstance(acl, ScanError):
                yield ScanError(path.absolute().as_uri(), acl.kind, acl.reason)
                continue
            try:
                size = path.stat().st_size
            except OSError as exc:
                yield ScanError(
                    path.absolute().as_uri(), "unreadable", f"cannot stat: {exc.strerror}"
                )
                continue
            if self.max_bytes is not None and size > self.max_bytes:
                yield ScanError(
                    str(path),
                    "too_large",
                    f"{size:,} bytes is over the {self.max_bytes:,}-byte limit",
                )
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                yield ScanError(
                    path.absolute().as_uri(), "unreadable", f"cannot read: {exc.strerror}"
                )
                continue
            yield SourceItem(
                source=self.name,
                uri=path.absolute().as_uri(),
                version=content_version(data),
                title=path.stem,
                mime=guess_mime(path.name),
                reader=constant(data),
                metadata={"path": rel},
                acl=acl,
                size=size,
            )
