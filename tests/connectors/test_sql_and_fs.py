"""Connectors against real files and a real SQLite database."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from connectors import (
    BeirConnector,
    FilesystemConnector,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    SqlConnector,
)


def items(scan: object) -> tuple[list[SourceItem], list[ScanError]]:
    got = list(scan)  # type: ignore[call-overload]
    return (
        [i for i in got if isinstance(i, SourceItem)],
        [e for e in got if isinstance(e, ScanError)],
    )


def test_sql_rows_become_documents(tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE articles (id INTEGER, title TEXT, body TEXT, summary TEXT, "
        "lang TEXT, acl TEXT)"
    )
    con.executemany(
        "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?)",
        [
            (1, "Reset a password", "Open settings.", "How to reset", "en", "group:support"),
            (2, "VPN", "Install the client.", None, "en", '["user:bob", "group:it"]'),
            (3, "Broken", "text", None, "en", '{"allow": ["nobody"]}'),
            (4, "Open", "Public article.", None, "de", None),
        ],
    )
    con.commit()
    con.close()
    conn = SqlConnector(
        f"sqlite:///{db}",
        "SELECT * FROM articles ORDER BY id",
        id_column="id",
        text_columns=["body", "summary"],
        title_column="title",
        metadata_columns=["lang"],
        acl_column="acl",
        name="articles",
    )
    docs, errors = items(conn.scan())
    assert [d.uri.rsplit("/", 1)[-1] for d in docs] == ["1", "2", "4"]
    assert docs[0].acl is not None and docs[0].acl.principals == {"group:support"}
    assert docs[1].acl is not None and docs[1].acl.principals == {"user:bob", "group:it"}
    assert docs[2].acl is None and docs[2].metadata == {"lang": "de"}
    assert b"body: Open settings." in docs[0].read() and b"# Reset a password" in docs[0].read()
    assert errors[0].kind == "bad_acl" and "nobody" in errors[0].reason
    again, _ = items(conn.scan())
    assert [d.version for d in again] == [d.version for d in docs], "versions are stable"
    with pytest.raises(SourceUnavailableError, match="no column"):
        list(
            SqlConnector(
                f"sqlite:///{db}", "SELECT id FROM articles", id_column="id", text_columns=["body"]
            ).scan()
        )


def test_sql_uri_hides_password() -> None:
    conn = SqlConnector(
        "postgresql://app:s3cret@db.internal/kb",
        "SELECT 1",
        id_column="id",
        text_columns=["t"],
        name="kb",
    )
    assert "s3cret" not in conn.base_uri and "s3cret" not in conn.name


def test_filesystem_root_links_globs_and_sidecars(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# A")
    (root / "b.txt").write_text("B")
    (root / "sub" / "c.md").write_text("# C")
    (root / "sub" / ".acl.json").write_text('{"allow": ["group:eng"], "tenant": "acme"}')
    (root / "a.md.acl.json").write_text('{"public": true}')
    (root / "bad.md").write_text("# Bad")
    (root / "bad.md.acl.json").write_text("{broken")
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    (root / "leak.txt").symlink_to(outside)
    (root / "sub" / "loop").symlink_to(root)
    (root / "inside-link.md").symlink_to(root / "a.md")
    os.mkfifo(root / "pipe")
    docs, errors = items(FilesystemConnector(root).scan())
    names = sorted(Path(d.uri).name for d in docs)
    assert names == ["a.md", "b.txt", "c.md", "inside-link.md"]
    kinds = {Path(e.uri).name: e.kind for e in errors}
    assert kinds["leak.txt"] == "outside_root" and kinds["bad.md"] == "bad_acl"
    assert kinds["pipe"] == "unsupported"
    assert all(b"top secret" not in d.read() for d in docs)
    by = {Path(d.uri).name: d for d in docs}
    assert by["a.md"].acl is not None and by["a.md"].acl.principals == {"public"}
    assert by["c.md"].acl is not None and by["c.md"].acl.tenant == "acme"
    assert by["b.txt"].acl is None
    only_md, _ = items(FilesystemConnector(root, include=["*.md"], exclude=["sub/*"]).scan())
    assert sorted(Path(d.uri).name for d in only_md) == ["a.md", "inside-link.md"]
    small, errs = items(FilesystemConnector(root, max_bytes=0).scan())
    assert not small and any(e.kind == "too_large" for e in errs)


def test_beir_reports_bad_lines(tmp_path: Path) -> None:
    corpus = tmp_path / "ds" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_text(
        '{"_id": "1", "title": "T", "text": "hello"}\nnot json\n{"_id": "2", "text": "x"}\n'
    )
    docs, errors = items(BeirConnector(corpus.parent).scan())
    assert [d.uri for d in docs] == ["beir://ds/1", "beir://ds/2"]
    assert errors[0].kind == "bad_record" and "line 2" in errors[0].reason
