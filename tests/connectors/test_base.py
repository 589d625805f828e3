"""The shared contract: items, ACLs, errors, mime types, and the package's boundary."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

import connectors
from connectors import (
    Acl,
    AclError,
    BeirConnector,
    ConfigError,
    Connector,
    ConnectorError,
    ContentChangedError,
    ErrorKind,
    FilesystemConnector,
    ItemReadError,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    SqlConnector,
    WebConnector,
    content_version,
    guess_mime,
    partition,
)
from connectors.base import InMemory

PACKAGE = Path(connectors.__file__).parent


def test_all_names_exist_and_are_sorted() -> None:
    assert connectors.__all__ == sorted(connectors.__all__)
    public = {n for n in dir(connectors) if not n.startswith("_")}
    modules = {"base", "beir", "fetch", "filesystem", "sql", "web"}
    assert public - modules == set(connectors.__all__)


def test_nothing_from_ragstack_is_imported() -> None:
    for source in PACKAGE.glob("*.py"):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "ragstack" for n in names), source
    code = (
        "import sys, connectors; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ragstack', 'sqlalchemy'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, f"import connectors pulled in {done.stdout}{done.stderr}"


def test_error_tree() -> None:
    for exc in (ConfigError, SourceUnavailableError, AclError, ItemReadError):
        assert issubclass(exc, ConnectorError)
    assert issubclass(ConfigError, ValueError) and issubclass(AclError, ValueError)
    assert issubclass(ItemReadError, OSError), "consumers catching OSError on read see it"
    assert issubclass(ContentChangedError, ItemReadError)
    assert isinstance(ErrorKind.TOO_LARGE, str) and ErrorKind.TOO_LARGE.value == "too_large"
    assert str(ErrorKind.ROBOTS) == "robots" and f"{ErrorKind.ROBOTS}" == "robots"


def test_every_connector_meets_the_protocol(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    made: list[object] = [
        FilesystemConnector(tmp_path),
        BeirConnector(tmp_path),
        SqlConnector("sqlite://", "SELECT 1 AS id", name="q", id_column="id", text_columns=["t"]),
        WebConnector(["http://127.0.0.1:1/"]),
    ]
    for c in made:
        assert isinstance(c, Connector) and isinstance(c.name, str) and c.name


def test_acl_from_json_shapes() -> None:
    acl = Acl.from_json({"tenant": "acme", "allow": ["user:alice", " group:eng "]})
    assert acl == Acl("acme", frozenset({"user:alice", "group:eng"}))
    assert Acl.from_json({"public": True}) == Acl.public()
    both = Acl.from_json({"public": True, "allow": ["user:bob"]})
    assert both.principals == {"public", "user:bob"} and both.tenant is None
    assert Acl.from_json(acl.to_json()) == acl


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "JSON object"),
        ({}, "allow someone"),
        ({"public": False}, "allow someone"),
        ({"allow": []}, "allow someone"),
        ({"allow": "user:alice"}, "list of principals"),
        ({"allow": ["alice"]}, "not a principal"),
        ({"allow": ["user:"]}, "not a principal"),
        ({"allow": ["role:admin"]}, "not a principal"),
        ({"allowed": ["user:alice"]}, "unknown ACL key"),
        ({"public": "yes"}, "true or false"),
        ({"public": True, "tenant": 3}, "'tenant' must be a string"),
        ({"public": True, "tenant": " "}, "blank"),
    ],
)
def test_acl_rejects_malformed(data: object, message: str) -> None:
    with pytest.raises(AclError, match=message):
        Acl.from_json(data)


def test_source_item_is_frozen_hashable_picklable() -> None:
    meta: dict[str, str | int | float | bool] = {"lang": "en"}
    item = SourceItem(
        source="s",
        uri="x://1",
        version=content_version(b"hello"),
        title="T",
        mime="text/plain",
        reader=InMemory(b"hello"),
        metadata=meta,
        acl=Acl.public(),
        size=5,
    )
    meta["lang"] = "de"
    assert item.metadata == {"lang": "en"}, "the item keeps its own copy"
    assert item.read() == b"hello" == item.open()
    with pytest.raises(FrozenInstanceError):
        item.uri = "x://2"  # type: ignore[misc]
    assert hash(item) == hash(pickle.loads(pickle.dumps(item)))
    assert pickle.loads(pickle.dumps(item)).read() == b"hello"
    assert "hello" not in repr(item), "bytes stay out of reprs and logs"


def test_versions() -> None:
    v = content_version(b"abc")
    assert v == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert content_version(b"abd") != v


def test_partition() -> None:
    err = ScanError("x://bad", ErrorKind.BAD_RECORD, "broken")
    item = SourceItem("s", "x://ok", "v", "", "text/plain", InMemory(b""))
    results: list[SourceItem | ScanError] = [err, item]
    assert partition(iter(results)) == ([item], [err])


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("notes.md", "text/markdown"),
        ("a/b/README.MD", "text/markdown"),
        ("mail.eml", "message/rfc822"),
        ("mail.msg", "application/vnd.ms-outlook"),
        ("book.epub", "application/epub+zip"),
        ("doc.odt", "application/vnd.oasis.opendocument.text"),
        ("doc.rtf", "text/rtf"),
        ("rows.ndjson", "application/x-ndjson"),
        ("rows.jsonl", "application/x-ndjson"),
        ("todo.org", "text/org"),
        ("guide.rst", "text/x-rst"),
        ("r.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("p.pdf", "application/pdf"),
        ("page.html", "text/html"),
        ("t.tsv", "text/tab-separated-values"),
        ("c.yaml", "application/yaml"),
        ("song.mp3", "audio/mpeg"),
        ("no-suffix", "application/octet-stream"),
        ("odd.zzzq", "application/octet-stream"),
    ],
)
def test_guess_mime(name: str, mime: str) -> None:
    assert guess_mime(name) == mime
