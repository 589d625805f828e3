"""FilesystemConnector on real trees: symlinks, loops, sidecar ACLs, globs, limits, bad files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import connectors.filesystem as fs_module
from connectors import (
    Acl,
    ContentChangedError,
    ErrorKind,
    FilesystemConnector,
    ItemReadError,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    partition,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def scan(root: Path, **kwargs: object) -> tuple[dict[str, SourceItem], dict[str, ScanError]]:
    """Items and errors keyed by path relative to ``root``."""
    items, errors = partition(FilesystemConnector(root, **kwargs).scan())  # type: ignore[arg-type]

    def rel(uri: str) -> str:
        return Path(uri.removeprefix("file://")).relative_to(root).as_posix()

    by_item = {rel(i.uri): i for i in items}
    by_error = {rel(e.uri): e for e in errors}
    assert len(by_item) == len(items) and len(by_error) == len(errors), "no URI twice"
    return by_item, by_error


def test_plain_tree(tmp_path: Path) -> None:
    write(tmp_path / "a.md", "# A\n")
    write(tmp_path / "sub" / "deeper" / "b.txt", "bee")
    write(tmp_path / "sub" / "c.pdf", "%PDF-1.4")
    items, errors = scan(tmp_path)
    assert not errors
    assert list(items) == ["a.md", "sub/c.pdf", "sub/deeper/b.txt"], "sorted, depth first"
    b = items["sub/deeper/b.txt"]
    assert b.uri == (tmp_path / "sub" / "deeper" / "b.txt").as_uri()
    assert b.uri.startswith("file:///")
    assert b.title == "b" and b.mime == "text/plain" and b.size == 3 and b.acl is None
    assert b.version == "sha256:" + __import__("hashlib").sha256(b"bee").hexdigest()
    assert b.metadata["path"] == "sub/deeper/b.txt" and "modified" in b.metadata
    assert b.read() == b"bee"
    assert items["sub/c.pdf"].mime == "application/pdf"
    assert FilesystemConnector(tmp_path).count() == 3


def test_single_file_root(tmp_path: Path) -> None:
    f = write(tmp_path / "one.md", "# One")
    write(tmp_path / ".acl.json", '{"allow": ["group:eng"]}')
    items, errors = partition(FilesystemConnector(f).scan())
    assert not errors and [i.uri for i in items] == [f.as_uri()]
    assert items[0].acl is not None and items[0].acl.principals == {"group:eng"}
    assert items[0].read() == b"# One"


def test_missing_root() -> None:
    with pytest.raises(SourceUnavailableError, match="no such file"):
        FilesystemConnector(Path("/nonexistent/nowhere"))


def test_symlinks_never_leave_the_root_and_loops_end(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "a.md", "# A")
    write(root / "sub" / "c.md", "# C")
    secret = write(tmp_path / "outside" / "secret.txt", "top secret")
    (root / "leak.txt").symlink_to(secret)  # file link escaping the root
    (root / "leak-dir").symlink_to(secret.parent)  # folder link escaping the root
    (root / "dotdot.txt").symlink_to(Path("..") / "outside" / "secret.txt")  # relative escape
    (root / "sub" / "loop").symlink_to(root)  # back to an enclosing folder
    (root / "self").symlink_to(root / "self")  # a link to itself
    (root / "ping").symlink_to(root / "pong")  # two links pointing at each other
    (root / "pong").symlink_to(root / "ping")
    (root / "alias").symlink_to(root / "sub")  # folder inside the root: reached anyway
    (root / "inside-link.md").symlink_to(Path("sub") / "c.md")  # file link inside the root
    (root / "dangling.txt").symlink_to(root / "gone.txt")
    items, errors = scan(root)
    assert sorted(items) == ["a.md", "inside-link.md", "sub/c.md"]
    assert items["inside-link.md"].read() == b"# C"
    kinds = {k: e.kind for k, e in errors.items()}
    assert kinds == {
        "leak.txt": ErrorKind.OUTSIDE_ROOT,
        "leak-dir": ErrorKind.OUTSIDE_ROOT,
        "dotdot.txt": ErrorKind.OUTSIDE_ROOT,
        "sub/loop": ErrorKind.SYMLINK_LOOP,
        "self": ErrorKind.SYMLINK_LOOP,
        "ping": ErrorKind.SYMLINK_LOOP,
        "pong": ErrorKind.SYMLINK_LOOP,
        "dangling.txt": ErrorKind.UNREADABLE,
    }
    assert "not followed" in errors["leak.txt"].reason
    assert "broken symlink" in errors["dangling.txt"].reason
    assert all(b"top secret" not in i.read() for i in items.values())


def test_root_given_through_a_symlink(tmp_path: Path) -> None:
    write(tmp_path / "real" / "a.md", "# A")
    (tmp_path / "via").symlink_to(tmp_path / "real")
    items, errors = scan(tmp_path / "via")
    assert list(items) == ["a.md"] and not errors
    assert items["a.md"].read() == b"# A"


def test_read_refuses_a_file_swapped_for_an_escaping_link(tmp_path: Path) -> None:
    root = tmp_path / "root"
    doc = write(root / "doc.txt", "fine")
    secret = write(tmp_path / "secret.txt", "fine")  # same bytes: only the check can stop it
    (item,), _ = partition(FilesystemConnector(root).scan())
    doc.unlink()
    doc.symlink_to(secret)
    with pytest.raises(ItemReadError, match="outside"):
        item.read()


def test_sidecar_acls(tmp_path: Path) -> None:
    write(tmp_path / ".acl.json", '{"public": true}')  # above the root: never used
    root = tmp_path / "root"
    write(root / "open.md", "x")
    write(root / "open.md.acl.json", '{"public": true}')
    write(root / "plain.md", "x")
    write(root / "hr" / ".acl.json", json.dumps({"tenant": "acme", "allow": ["group:hr"]}))
    write(root / "hr" / "pay.md", "x")
    write(root / "hr" / "board" / "minutes.md", "x")
    write(root / "hr" / "board" / "minutes.md.acl.json", '{"allow": ["group:board"]}')
    write(root / "hr" / "board" / "notes.md", "x")
    write(root / "hr" / "deep" / ".acl.json", '{"allow": ["user:ceo"]}')
    write(root / "hr" / "deep" / "more" / "x.md", "x")
    write(root / "broken" / ".acl.json", "{not json")
    write(root / "broken" / "a.md", "x")
    write(root / "typo.md", "x")
    write(root / "typo.md.acl.json", '{"alow": ["user:bob"]}')
    items, errors = scan(root)
    acl = {k: (i.acl.tenant, sorted(i.acl.principals)) if i.acl else None for k, i in items.items()}
    assert acl == {
        "open.md": (None, ["public"]),
        "plain.md": None,  # the source says nothing: the consumer decides
        "hr/pay.md": ("acme", ["group:hr"]),
        "hr/board/minutes.md": (None, ["group:board"]),  # file sidecar beats the folder's
        "hr/board/notes.md": ("acme", ["group:hr"]),  # nearest folder file up the tree
        "hr/deep/more/x.md": (None, ["user:ceo"]),
    }
    assert not any(k.endswith(".acl.json") for k in (*items, *errors)), "sidecars aren't docs"
    assert errors["broken/a.md"].kind == ErrorKind.BAD_ACL
    assert "broken/.acl.json" in errors["broken/a.md"].reason
    assert errors["typo.md"].kind == ErrorKind.BAD_ACL and "alow" in errors["typo.md"].reason


def test_symlinked_file_takes_its_targets_acl(tmp_path: Path) -> None:
    write(tmp_path / "private" / ".acl.json", '{"allow": ["group:hr"]}')
    write(tmp_path / "private" / "pay.md", "salaries")
    write(tmp_path / "public" / ".acl.json", '{"public": true}')
    (tmp_path / "public" / "pay.md").symlink_to(tmp_path / "private" / "pay.md")
    items, _ = scan(tmp_path)
    link = items["public/pay.md"]
    assert link.acl is not None and link.acl.principals == {"group:hr"}


def test_version_is_the_content_alone(tmp_path: Path) -> None:
    write(tmp_path / "a.md", "same")
    write(tmp_path / "b.md", "same")
    first, _ = scan(tmp_path)
    assert first["a.md"].version == first["b.md"].version, "content-based, not path-based"
    again, _ = scan(tmp_path)
    assert {k: i.version for k, i in again.items()} == {k: i.version for k, i in first.items()}
    write(tmp_path / "a.md.acl.json", '{"allow": ["user:alice"]}')
    acl, _ = scan(tmp_path)
    assert acl["a.md"].version == first["a.md"].version, "an ACL is not content"
    assert acl["a.md"].acl == Acl(None, frozenset({"user:alice"}))
    write(tmp_path / "a.md.acl.json", '{"allow": ["user:bob"]}')
    changed_acl, _ = scan(tmp_path)
    assert changed_acl["a.md"].acl == Acl(None, frozenset({"user:bob"})), "a revoked grant"


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records every file the connector reads to hash."""
    calls: list[int] = []
    real_hash = fs_module._hash_fd

    def counting(fd: int) -> str:
        calls.append(fd)
        return real_hash(fd)

    monkeypatch.setattr(fs_module, "_hash_fd", counting)
    return calls


def test_hashing_is_cached_by_stat(tmp_path: Path, hashed: list[int]) -> None:
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.txt", name)
    conn = FilesystemConnector(tmp_path)
    assert conn.count() == 3 and not hashed, "counting reads nothing"
    first = {i.uri: i.version for i in partition(conn.scan())[0]}
    assert len(hashed) == 3
    assert {i.uri: i.version for i in partition(conn.scan())[0]} == first
    assert len(hashed) == 3, "an unchanged file is not read again"
    (tmp_path / "b.txt").write_text("bee")
    second = {i.uri: i.version for i in partition(conn.scan())[0]}
    assert len(hashed) == 4 and second != first


def test_read_detects_change_and_disappearance(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "one")
    write(tmp_path / "b.txt", "two")
    items, _ = scan(tmp_path)
    (tmp_path / "a.txt").write_text("changed")
    (tmp_path / "b.txt").unlink()
    with pytest.raises(ContentChangedError, match="changed since"):
        items["a.txt"].read()
    with pytest.raises(ItemReadError, match="cannot read"):
        items["b.txt"].read()
    with pytest.raises(OSError):  # what a consumer that only knows OSError catches
        items["b.txt"].read()


def test_include_exclude(tmp_path: Path) -> None:
    for rel in (
        "a.md",
        "b.txt",
        "sub/c.md",
        "sub/drafts/d.md",
        "node_modules/pkg/readme.md",
        "docs/e.md",
        "docs/f.rst",
    ):
        write(tmp_path / rel, "x")
    items, _ = scan(tmp_path, include=["*.md"])
    assert sorted(items) == [
        "a.md",
        "docs/e.md",
        "node_modules/pkg/readme.md",
        "sub/c.md",
        "sub/drafts/d.md",
    ]
    items, _ = scan(tmp_path, include=["*.md"], exclude=["node_modules", "**/drafts/*"])
    assert sorted(items) == ["a.md", "docs/e.md", "sub/c.md"]
    items, _ = scan(tmp_path, include=["docs/*"], exclude=["*.rst"])
    assert sorted(items) == ["docs/e.md"]
    items, _ = scan(tmp_path, exclude=["sub/*", "docs"])
    assert sorted(items) == ["a.md", "b.txt", "node_modules/pkg/readme.md"]
    items, _ = scan(tmp_path, include=["**/*.md"])
    assert "a.md" in items, "a leading **/ also matches at the top"
    assert FilesystemConnector(tmp_path, include=["*.md"], exclude=["sub/*"]).count() == 3


def test_size_limit(tmp_path: Path, hashed: list[int]) -> None:
    write(tmp_path / "small.txt", "x" * 10)
    write(tmp_path / "big.txt", "x" * 5000)
    items, errors = scan(tmp_path, max_bytes=1000)
    assert list(items) == ["small.txt"] and len(hashed) == 1, "the big file is never read"
    assert errors["big.txt"].kind == ErrorKind.TOO_LARGE
    assert errors["big.txt"].reason == "5,000 bytes is over the 1,000-byte limit: not read"
    items["small.txt"].read()
    write(tmp_path / "small.txt", "x" * 2000)
    with pytest.raises(ItemReadError, match="grew"):
        items["small.txt"].read()


def test_special_files_are_reported_not_opened(tmp_path: Path) -> None:
    """What we can make unreadable as root: a FIFO (opening it would block a naive reader),
    a socket, a dangling symlink; a folder named like a file is walked, not read."""
    write(tmp_path / "ok.txt", "fine")
    os.mkfifo(tmp_path / "pipe.txt")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock.md"))
        (tmp_path / "dangling.md").symlink_to(tmp_path / "nothing")
        (tmp_path / "fifo-link.txt").symlink_to(tmp_path / "pipe.txt")
        write(tmp_path / "folder.pdf" / "inner.txt", "inside")
        items, errors = scan(tmp_path)
    finally:
        sock.close()
    assert sorted(items) == ["folder.pdf/inner.txt", "ok.txt"]
    assert {k: e.kind for k, e in errors.items()} == {
        "pipe.txt": ErrorKind.UNSUPPORTED,
        "sock.md": ErrorKind.UNSUPPORTED,
        "fifo-link.txt": ErrorKind.UNSUPPORTED,
        "dangling.md": ErrorKind.UNREADABLE,
    }


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ragstack-conn-"))
    path.chmod(0o755)
    yield path
    for p in path.rglob("*"):
        if not p.is_symlink():
            p.chmod(stat.S_IRWXU)
    shutil.rmtree(path)


def _scan_as_nobody(root: Path) -> list[tuple[str, str, str]]:
    """Scan in a forked child that dropped root, so permission bits apply to it."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            got = [
                (r.uri, "item", r.read().decode())
                if isinstance(r, SourceItem)
                else (r.uri, str(r.kind), r.reason)
                for r in FilesystemConnector(root).scan()
            ]
            os.write(write_end, json.dumps(got).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        out = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child scan failed"
    return [tuple(r) for r in json.loads(out)]


def test_unreadable_files_and_folders_are_skipped_with_a_reason(world_dir: Path) -> None:
    """chmod 000 does not stop root, so as root the scan runs in a child that became nobody."""
    write(world_dir / "ok.txt", "fine").chmod(0o644)
    write(world_dir / "secret.txt", "hidden").chmod(0)
    locked = world_dir / "locked"
    write(locked / "inner.txt", "hidden").chmod(0o644)
    locked.chmod(0)
    if os.geteuid() == 0:
        got = _scan_as_nobody(world_dir)
    else:
        got = [
            (r.uri, "item", r.read().decode())
            if isinstance(r, SourceItem)
            else (r.uri, str(r.kind), r.reason)
            for r in FilesystemConnector(world_dir).scan()
        ]
    by_name = {Path(uri).name: (kind, reason) for uri, kind, reason in got}
    assert by_name == {
        "ok.txt": ("item", "fine"),
        "secret.txt": ("unreadable", "cannot read: Permission denied"),
        "locked": ("unreadable", "cannot list folder: Permission denied"),
    }
