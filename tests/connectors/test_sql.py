"""SqlConnector on a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from connectors import (
    ConfigError,
    ErrorKind,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    SqlConnector,
    partition,
)

ROWS = [
    # id, title, body, summary, lang, year, price, published, blob, acl
    (1, "Reset a password", "Open settings.", "How to reset", "en", 2024, "9.50", "2024-05-01",
     b"\x00", "group:support, user:ann"),
    (2, "VPN", "Install the client.", None, "en", None, None, None, None,
     '["user:bob", "group:it"]'),
    (3, "Tenant doc", "Scoped.", None, "en", 2023, None, None, None,
     '{"tenant": "acme", "allow": ["group:eng"]}'),
    (4, "Broken ACL", "text", None, "en", None, None, None, None, '{"allow": ["nobody"]}'),
    (5, None, "Untitled body.", "", "de", None, None, None, None, None),
    (None, "No id", "lost", None, "en", None, None, None, None, None),
    (1, "Duplicate", "again", None, "en", None, None, None, None, None),
    ("a/b c", "Odd id", "odd", None, "en", None, None, None, None, "  "),
]  # fmt: skip


def make_db(path: Path, rows: Sequence[tuple[object, ...]] = ROWS) -> str:
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE articles (id, title TEXT, body TEXT, summary TEXT, lang TEXT, "
        "year INTEGER, price DECIMAL(6, 2), published DATE, blob BLOB, acl TEXT, extra TEXT)"
    )
    con.executemany("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'x')", rows)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def articles(url: str, query: str = "SELECT * FROM articles ORDER BY rowid") -> SqlConnector:
    return SqlConnector(
        url,
        query,
        name="articles",
        id_column="id",
        title_column="title",
        text_columns=["body", "summary"],
        metadata_columns=["lang", "year", "price", "blob"],
        acl_column="acl",
    )


def scan(conn: SqlConnector) -> tuple[dict[str, SourceItem], list[ScanError]]:
    items, errors = partition(conn.scan())
    return {i.uri.rsplit("/", 1)[-1]: i for i in items}, errors


def test_rows_become_documents(tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    items, errors = scan(articles(make_db(db)))
    assert list(items) == ["1", "2", "3", "5", "a%2Fb%20c"]
    one = items["1"]
    assert one.uri == f"sql://{db}/articles/1" and one.source == f"sql:sqlite:{db}/articles"
    assert one.mime == "text/plain" and one.title == "Reset a password"
    assert one.read() == b"Reset a password\n\nOpen settings.\n\nHow to reset"
    assert one.size == len(one.read())
    assert one.metadata == {"lang": "en", "year": 2024, "price": 9.5}, "NULL and BLOB left out"
    assert one.acl is not None and one.acl.principals == {"group:support", "user:ann"}
    assert items["2"].acl is not None and items["2"].acl.principals == {"user:bob", "group:it"}
    assert items["3"].acl is not None and items["3"].acl.tenant == "acme"
    assert (
        items["5"].acl is None
        and items["5"].title == ""
        and items["5"].read() == (b"Untitled body.")
    )
    assert items["a%2Fb%20c"].acl is None, "a blank ACL says nothing"
    by_kind = {(e.kind, e.uri.rsplit("/", 1)[-1]) for e in errors}
    assert by_kind == {
        (ErrorKind.BAD_ACL, "4"),
        (ErrorKind.BAD_RECORD, "?row=6"),
        (ErrorKind.BAD_RECORD, "1"),
    }
    reasons = " | ".join(e.reason for e in errors)
    assert "not a principal: 'nobody'" in reasons
    assert "row 6: the id column 'id' is NULL" in reasons
    assert "row 7: duplicate id '1' (first in row 1)" in reasons


def test_versions_follow_text_and_metadata_and_acls_are_apart(tmp_path: Path) -> None:
    url = make_db(tmp_path / "kb.db")
    first, _ = scan(articles(url))
    again, _ = scan(articles(url))
    assert {k: i.version for k, i in again.items()} == {k: i.version for k, i in first.items()}
    con = sqlite3.connect(tmp_path / "kb.db")
    con.execute("UPDATE articles SET extra = 'changed' WHERE id = 1")  # not configured
    con.execute("UPDATE articles SET body = 'Installed.' WHERE id = 2")
    con.execute("UPDATE articles SET year = 2025 WHERE id = 3")
    con.execute("UPDATE articles SET acl = 'user:eve' WHERE id = 5")
    con.commit()
    con.close()
    after, _ = scan(articles(url))
    changed = {k for k in first if after[k].version != first[k].version}
    assert changed == {"2", "3"}, "an ACL is not content"
    assert first["5"].acl != after["5"].acl
    assert after["5"].acl is not None and after["5"].acl.principals == {"user:eve"}


def test_a_large_table_streams(tmp_path: Path) -> None:
    rows = [(i, f"T{i}", f"body {i}", None, "en", i, None, None, None, None) for i in range(2500)]
    items, errors = scan(articles(make_db(tmp_path / "big.db", rows)))
    assert len(items) == 2500 and not errors


def test_password_never_appears() -> None:
    conn = SqlConnector(
        "postgresql+psycopg://app:s3cret@db.internal:5433/kb?sslmode=require&password=s3cret",
        "SELECT 1",
        name="kb",
        id_column="id",
        text_columns=["t"],
    )
    assert conn.base_uri == "sql://db.internal:5433/kb/kb"
    assert "s3cret" not in conn.name and "app" not in conn.base_uri
    failing = SqlConnector(
        "mysql+nosuchdriver://app:s3cret@127.0.0.1:1/kb", "SELECT 1", name="kb",
        id_column="id", text_columns=["t"],
    )  # fmt: skip
    with pytest.raises(SourceUnavailableError) as info:
        list(failing.scan())
    assert "s3cret" not in str(info.value)


def test_relative_sqlite_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_db(tmp_path / "rel.db")
    items, _ = scan(articles("sqlite:///rel.db"))
    assert items["1"].uri == f"sql://{tmp_path / 'rel.db'}/articles/1"


def test_whole_source_failures(tmp_path: Path) -> None:
    url = make_db(tmp_path / "kb.db")
    with pytest.raises(SourceUnavailableError, match=r"no column\(s\) \['body'"):
        list(
            articles(
                url, "SELECT id, title, summary, lang, year, price, blob, acl FROM articles"
            ).scan()
        )
    with pytest.raises(SourceUnavailableError, match=r"query on database .* failed"):
        list(articles(url, "SELECT * FROM no_such_table").scan())
    with pytest.raises(ConfigError, match="not a database URL"):
        articles("definitely not a url")
    with pytest.raises(ConfigError, match="name"):
        SqlConnector(url, "SELECT 1", name="a/b", id_column="id", text_columns=["t"])
    with pytest.raises(ConfigError, match="text column"):
        SqlConnector(url, "SELECT 1", name="q", id_column="id", text_columns=[])
