"""Files under a root folder (or one file), with include/exclude globs and ACL sidecars.

Walking
    Folders are walked in sorted order. A symlinked *folder* is never descended: inside the
    root its files are reached through their real path anyway (a link back to itself or to an
    enclosing folder is reported as ``symlink_loop``), outside the root it is reported as
    ``outside_root``. A symlinked *file* is taken under the link's path when its target is
    inside the root, else reported as ``outside_root`` and never opened. FIFOs, sockets and
    devices are reported as ``unsupported`` and never opened (so a FIFO cannot hang a scan).

Globs
    ``include``/``exclude`` patterns (fnmatch; ``*`` also crosses ``/``) are matched against
    the path relative to the root in POSIX form and, for patterns without ``/``, against the
    bare name; a leading ``**/`` also matches at the top level. ``exclude`` also prunes
    folders (``exclude=["node_modules", ".git"]``). ``include`` applies to files only.

ACL sidecars (they are never documents themselves)
    ``<file>.acl.json`` beside a file wins; else the nearest ``.acl.json`` in the file's
    folder or an enclosing folder up to the root. Shape: ``{"tenant": "acme", "allow":
    ["user:alice", "group:eng"]}`` or ``{"public": true}`` (see ``Acl.from_json``). A
    symlinked file takes the ACL of its *target's* location, so a link cannot publish a
    protected file. A malformed sidecar turns the files it governs into ``bad_acl`` errors.

Versions
    ``sha256:<hex>`` of the content (the ACL is the item's ``acl``, not part of it), hashed
    while the scan yields the item, streamed (the content is not kept in memory) and cached per
    (device, inode, size, mtime, ctime) for the connector's lifetime, so a rescan with the
    same connector reads only files that changed. ``read()`` re-reads the file and raises
    ``ContentChangedError`` if it no longer matches that version.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import (
    Acl,
    AclError,
    ConfigError,
    ContentChangedError,
    ErrorKind,
    ItemReadError,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    guess_mime,
)

SIDECAR_SUFFIX = ".acl.json"
DIR_ACL = ".acl.json"
MAX_SIDECAR_BYTES = 64 * 1024
_BLOCK = 1 << 20

_StatKey = tuple[int, int, int, int, int]


def _key(st: os.stat_result) -> _StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _NotRegularError(OSError):
    pass


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """An fd and its stat for a regular file; never blocks on a FIFO swapped in meanwhile."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _NotRegularError(errno.EINVAL, "not a regular file (FIFO, socket or device)")
    return fd, st


def _hash_fd(fd: int) -> str:
    digest = hashlib.sha256()
    while block := os.read(fd, _BLOCK):
        digest.update(block)
    return digest.hexdigest()


def _inside(real: Path, real_root: Path) -> bool:
    return real == real_root or real_root in real.parents


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for g in patterns:
        if fnmatch.fnmatchcase(rel, g):
            return True
        if "/" not in g and fnmatch.fnmatchcase(name, g):
            return True
        if g.startswith("**/") and fnmatch.fnmatchcase(rel, g[3:]):
            return True
    return False


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


@dataclass(frozen=True)
class FileReader:
    """Reads a file listed by a scan, checking it is still inside the root and unchanged."""

    path: Path
    real_root: Path
    sha256: str
    max_bytes: int | None

    def __call__(self) -> bytes:
        try:
            real = self.path.resolve(strict=True)
            if not _inside(real, self.real_root):
                raise ItemReadError(f"{self.path} now leads outside {self.real_root}")
            fd, st = _open_regular(real)
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, ItemReadError):
                raise
            raise ItemReadError(f"cannot read {self.path}: {exc}") from exc
        try:
            if self.max_bytes is not None and st.st_size > self.max_bytes:
                raise ItemReadError(
                    f"{self.path} grew to {st.st_size:,} bytes, over the "
                    f"{self.max_bytes:,}-byte limit"
                )
            chunks = []
            while block := os.read(fd, _BLOCK):
                chunks.append(block)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ContentChangedError(f"{self.path} changed since it was scanned")
        return data


@dataclass(frozen=True)
class _File:
    path: Path  # as reached from the root (a link keeps its own path)
    rel: str  # POSIX path relative to the root
    real: Path  # fully resolved, inside the root


class FilesystemConnector:
    """Every regular file under ``root`` (or ``root`` itself when it is a file)."""

    def __init__(
        self,
        root: Path,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        max_bytes: int | None = None,
        name: str | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        if not self.root.exists():
            raise SourceUnavailableError(f"no such file or folder: {self.root}")
        if max_bytes is not None and max_bytes < 0:
            raise ConfigError("max_bytes must be >= 0")
        for g in (*include, *exclude):
            if not isinstance(g, str) or not g:
                raise ConfigError(f"not a glob pattern: {g!r}")
        self.real_root = self.root.resolve()
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.max_bytes = max_bytes
        self.name = name or f"fs:{self.real_root}"
        self._hashes: dict[Path, tuple[_StatKey, str]] = {}

    # listing ----------------------------------------------------------------------------------

    def count(self) -> int:
        """How many files a scan will consider (nothing is read or hashed)."""
        return sum(1 for f in self._files() if isinstance(f, _File))

    def _files(self) -> Iterator[_File | ScanError]:
        if not self.root.is_dir():
            if self._wanted(self.root.name):
                yield _File(self.root, self.root.name, self.real_root)
            return
        stack = [(self.root, "")]
        while stack:
            folder, prefix = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                yield ScanError(
                    folder.as_uri(), ErrorKind.UNREADABLE, f"cannot list folder: {_reason(exc)}"
                )
                continue
            subfolders = []
            for entry in entries:
                rel = prefix + entry.name
                found = self._entry(entry, rel)
                if isinstance(found, Path):
                    subfolders.append((found, rel + "/"))
                elif found is not None:
                    yield found
            stack.extend(reversed(subfolders))

    def _entry(self, entry: os.DirEntry[str], rel: str) -> Path | _File | ScanError | None:
        """A folder to descend into, a file, a problem, or nothing (sidecar, excluded)."""
        path = Path(entry.path)
        if entry.name.endswith(SIDECAR_SUFFIX) or _matches(rel, self.exclude):
            return None
        if entry.is_symlink():
            return self._link(path, rel)
        if entry.is_dir(follow_symlinks=False):
            return path
        if entry.is_file(follow_symlinks=False):
            # Symlinked folders are never descended, so the real path is the root's plus rel.
            return _File(path, rel, self.real_root / rel) if self._wanted(rel) else None
        if not self._wanted(rel):
            return None
        return ScanError(
            path.as_uri(), ErrorKind.UNSUPPORTED, "not a regular file (FIFO, socket or device)"
        )

    def _link(self, path: Path, rel: str) -> _File | ScanError | None:
        uri = path.as_uri()
        try:
            target = path.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 reports a loop this way
            return ScanError(uri, ErrorKind.SYMLINK_LOOP, "symlink loop: the link leads to itself")
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return ScanError(
                    uri, ErrorKind.SYMLINK_LOOP, "symlink loop: the link leads to itself"
                )
            return ScanError(uri, ErrorKind.UNREADABLE, f"broken symlink: {_reason(exc)}")
        if not _inside(target, self.real_root):
            return ScanError(
                uri,
                ErrorKind.OUTSIDE_ROOT,
                f"symlink leads outside {self.root} (to {target}): not followed",
            )
        if target.is_dir():
            if _inside(path.parent.resolve(), target):
                return ScanError(
                    uri,
                    ErrorKind.SYMLINK_LOOP,
                    f"symlink loop: leads back to the enclosing folder {target}",
                )
            return None  # its files are reached through their real path
        if not self._wanted(rel):
            return None
        if not target.is_file():
            return ScanError(uri, ErrorKind.UNSUPPORTED, "symlink to something not a regular file")
        return _File(path, rel, target)

    def _wanted(self, rel: str) -> bool:
        if self.include and not _matches(rel, self.include):
            return False
        return not _matches(rel, self.exclude)

    # ACLs -------------------------------------------------------------------------------------

    def _acl_for(
        self, real: Path, cache: dict[Path, Acl | AclError | None]
    ) -> Acl | AclError | None:
        sidecar = real.with_name(real.name + SIDECAR_SUFFIX)
        if sidecar.is_file():
            return self._read_acl(sidecar)
        folder = real.parent
        top = self.real_root if self.root.is_dir() else self.real_root.parent
        while True:
            if folder not in cache:
                candidate = folder / DIR_ACL
                cache[folder] = self._read_acl(candidate) if candidate.is_file() else None
            found = cache[folder]
            if found is not None or folder == top or not _inside(folder, top):
                return found
            folder = folder.parent

    def _read_acl(self, path: Path) -> Acl | AclError:
        try:
            real = path.resolve(strict=True)
            base = self.real_root if self.root.is_dir() else self.real_root.parent
            if not _inside(real, base):
                return AclError(f"ACL sidecar {path} leads outside the root: not read")
            if real.stat().st_size > MAX_SIDECAR_BYTES:
                return AclError(f"ACL sidecar {path} is over {MAX_SIDECAR_BYTES:,} bytes")
            return Acl.from_json(json.loads(real.read_bytes()))
        except (OSError, RuntimeError, UnicodeError, json.JSONDecodeError, AclError) as exc:
            return AclError(f"ACL sidecar {path}: {exc}")

    # scanning ---------------------------------------------------------------------------------

    def _version(self, real: Path) -> tuple[os.stat_result, str]:
        """Stat and content SHA-256, hashed only when the stat key changed since last time."""
        fd, st = _open_regular(real)
        try:
            cached = self._hashes.get(real)
            if cached is not None and cached[0] == _key(st):
                return st, cached[1]
            if self.max_bytes is not None and st.st_size > self.max_bytes:
                return st, ""  # not read: the caller reports it
            digest = _hash_fd(fd)
        finally:
            os.close(fd)
        self._hashes[real] = (_key(st), digest)
        return st, digest

    def scan(self) -> Iterator[SourceItem | ScanError]:
        acl_cache: dict[Path, Acl | AclError | None] = {}  # per scan: sidecars may change
        seen: set[Path] = set()
        for found in self._files():
            if isinstance(found, ScanError):
                yield found
            else:
                seen.add(found.real)
                yield self._item(found, acl_cache)
        for gone in self._hashes.keys() - seen:  # a completed scan forgets deleted files
            del self._hashes[gone]

    def _item(
        self, f: _File, acl_cache: dict[Path, Acl | AclError | None]
    ) -> SourceItem | ScanError:
        uri = f.path.as_uri()
        acl = self._acl_for(f.real, acl_cache)
        if isinstance(acl, AclError):
            return ScanError(uri, ErrorKind.BAD_ACL, str(acl))
        try:
            st, digest = self._version(f.real)
        except _NotRegularError as exc:
            return ScanError(uri, ErrorKind.UNSUPPORTED, _reason(exc))
        except OSError as exc:
            return ScanError(uri, ErrorKind.UNREADABLE, f"cannot read: {_reason(exc)}")
        if self.max_bytes is not None and st.st_size > self.max_bytes:
            return ScanError(
                uri,
                ErrorKind.TOO_LARGE,
                f"{st.st_size:,} bytes is over the {self.max_bytes:,}-byte limit: not read",
            )
        modified = datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="seconds")
        return SourceItem(
            source=self.name,
            uri=uri,
            version=f"sha256:{digest}",
            title=f.path.stem,
            mime=guess_mime(f.path.name),
            reader=FileReader(f.path, self.real_root, digest, self.max_bytes),
            metadata={"path": f.rel, "modified": modified},
            acl=acl,
            size=st.st_size,
        )
