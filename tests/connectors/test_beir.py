"""BeirConnector on a generated corpus and on the real SciFact corpus."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from connectors import BeirConnector, ErrorKind, SourceUnavailableError, partition


def test_lines_become_documents_and_bad_lines_errors(tmp_path: Path) -> None:
    corpus = tmp_path / "mini" / "corpus.jsonl"
    corpus.parent.mkdir()
    lines = [
        json.dumps({"_id": "d1", "title": "Title", "text": "Body one.", "metadata": {"y": 1}}),
        "not json",
        json.dumps({"_id": 7, "text": "Integer id, no title."}),
        "",
        json.dumps({"_id": "d3", "title": "No text"}),
        json.dumps(["a", "list"]),
        json.dumps({"title": "no id", "text": "x"}),
        json.dumps({"_id": "d1", "text": "duplicate"}),
        json.dumps({"_id": "a/b", "title": None, "text": "odd id"}),
    ]
    raw = "\n".join(lines).encode() + b'\n{"_id": "latin", "text": "caf\xe9"}\n'
    corpus.write_bytes(raw)
    conn = BeirConnector(corpus.parent)
    assert conn.count() == 9, "non-blank lines"
    items, errors = partition(conn.scan())
    assert [i.uri for i in items] == ["beir://mini/d1", "beir://mini/7", "beir://mini/a%2Fb"]
    d1 = items[0]
    assert d1.read() == b"# Title\n\nBody one." and d1.title == "Title"
    assert d1.mime == "text/markdown" and d1.metadata == {"y": 1, "beir_id": "d1"}
    assert d1.version == "sha256:" + hashlib.sha256(b"# Title\n\nBody one.").hexdigest()
    assert items[1].read() == b"Integer id, no title." and items[1].title == ""
    assert all(e.kind == ErrorKind.BAD_RECORD for e in errors)
    got = {e.reason.split(":", 1)[0]: (e.uri, e.reason) for e in errors}
    assert set(got) == {f"line {n} of corpus.jsonl" for n in (2, 5, 6, 7, 8, 10)}
    assert got["line 2 of corpus.jsonl"][0] == f"{corpus.as_uri()}#line=2"
    assert "not JSON" in got["line 2 of corpus.jsonl"][1]
    assert got["line 5 of corpus.jsonl"][0] == "beir://mini/d3", "the doc keeps its identity"
    assert "'text' is missing" in got["line 5 of corpus.jsonl"][1]
    assert "not a JSON object" in got["line 6 of corpus.jsonl"][1]
    assert "no usable '_id'" in got["line 7 of corpus.jsonl"][1]
    assert "duplicate _id 'd1' (first on line 1)" in got["line 8 of corpus.jsonl"][1]
    assert "not UTF-8" in got["line 10 of corpus.jsonl"][1]


def test_a_jsonl_file_and_a_dataset_name(tmp_path: Path) -> None:
    f = tmp_path / "docs.jsonl"
    f.write_text('{"_id": "x", "text": "hello"}\n')
    items, _ = partition(BeirConnector(f, dataset="mine").scan())
    assert [i.uri for i in items] == ["beir://mine/x"]
    with pytest.raises(SourceUnavailableError, match="no BEIR corpus"):
        BeirConnector(tmp_path / "missing")


def test_real_scifact_corpus(shared_data: Path) -> None:
    conn = BeirConnector(shared_data / "scifact")
    items, errors = partition(conn.scan())
    assert not errors and len(items) == 5183 == conn.count()
    assert len({i.uri for i in items}) == 5183 and len({i.version for i in items}) > 5100
    first = json.loads((shared_data / "scifact" / "corpus.jsonl").open().readline())
    assert items[0].uri == f"beir://scifact/{first['_id']}"
    assert items[0].read() == f"# {first['title']}\n\n{first['text']}".encode()
    assert all(i.mime == "text/markdown" and i.size and i.title for i in items)
