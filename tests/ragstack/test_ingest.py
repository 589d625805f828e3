"""The write path through the service layer, on real SQLite and real indexes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexes import IdFilter
from ragstack.demo import SAMPLE_DIR
from ragstack.errors import ConfigError, InputError
from ragstack.service import IngestRequest, Ragstack, SourceSpec
from tests.ragstack.conftest import Factory

BOTH_BACKENDS = True  # every test on SQLite and on PostgreSQL

HANDBOOK = SAMPLE_DIR


def ingest(svc: Ragstack, folder: Path, collection: str = "docs", **kw: object) -> dict[str, int]:
    summary = svc.ingest(
        IngestRequest(collection, [SourceSpec(str(folder))], **kw),  # type: ignore[arg-type]
        principal="user:alice",
    )
    counts = summary.counts()
    counts["problems"] = len(summary.problems)
    return counts


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def all_stored_text(svc: Ragstack) -> str:
    """Every text the database holds: chunks, documents, and (PostgreSQL) the BM25 terms."""
    from sqlalchemy import inspect, text

    with svc.store.engine.connect() as con:
        parts = [r[0] for r in con.execute(text("SELECT text FROM chunks"))]
        parts += [r[0] for r in con.execute(text("SELECT text || title FROM documents"))]
        for table in inspect(con).get_table_names():
            if table.startswith("rs_bm25_terms_"):
                parts += [r[0] for r in con.execute(text(f"SELECT term FROM {table}"))]
    return "\n".join(parts)


def test_ingest_incremental_update_delete(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service()
    docs = tmp_path / "docs"
    for i in range(6):
        write(docs, f"note{i}.md", f"# Note {i}\n\n## Part\nSome text about topic {i}. " * 20)
    first = ingest(svc, docs)
    assert first["ingested"] == 6 and first["chunks"] > 6 and first["failed"] == 0
    again = ingest(svc, docs)
    assert again["unchanged"] == 6 and again["ingested"] == again["updated"] == 0
    write(docs, "note2.md", "# Note 2\n\nCompletely new text about gardening.")
    (docs / "note5.md").unlink()
    third = ingest(svc, docs)
    assert (third["updated"], third["deleted"], third["unchanged"]) == (1, 1, 4)
    info = svc.collection("docs")
    indexes, _ = svc.open_indexes(info)
    hits = indexes.lexical.search("gardening", 5)
    assert hits.ids.size == 1
    sql_ids = svc.store.live_chunk_ids(info.id)
    assert np.array_equal(np.sort(indexes.dense.ids()), sql_ids)
    assert np.array_equal(indexes.lexical.ids(), sql_ids)
    assert svc.check_index("docs").ok
    assert len(svc.documents("docs")) == 5


def test_pii_never_stored(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service()
    docs = tmp_path / "docs"
    write(
        docs,
        "ticket.txt",
        "Customer jane.roe@example.org called from +1 415 555 0199 "
        "about card 4111 1111 1111 1111 and IBAN GB82 WEST 1234 5698 7654 32.",
    )
    counts = ingest(svc, docs)
    assert counts["ingested"] == 1
    stored = all_stored_text(svc)
    for secret in ("jane.roe", "555 0199", "4111 1111", "GB82"):
        assert secret not in stored
    assert "<EMAIL>" in stored and "<CREDIT_CARD>" in stored
    doc = svc.documents("docs")[0]
    assert doc.pii_counts == {"EMAIL": 1, "PHONE": 1, "CREDIT_CARD": 1, "IBAN": 1}
    info = svc.collection("docs")
    indexes, _ = svc.open_indexes(info)
    assert indexes.lexical.search("jane roe example", 5).ids.size == 0


def test_opt_in_ner_pseudonymises_names_everywhere(make_service: Factory, tmp_path: Path) -> None:
    """NER is per collection; pseudonyms agree within one collection and differ across two."""
    import re

    svc = make_service()
    docs = tmp_path / "docs"
    write(
        docs, "a.md", "# Visit by Margaret Thornton\n\nMargaret Thornton flew to Lisbon on Monday."
    )
    write(docs, "b.txt", "The invoice was approved by Margaret Thornton (margaret@example.org).")
    assert ingest(svc, docs, pii_ner=True, pii_mode="pseudonym")["ingested"] == 2
    assert ingest(svc, docs, "plain")["ingested"] == 2
    stored = all_stored_text(svc)
    assert "Thornton" in stored, "the collection without NER keeps names"
    ner_docs = {Path(d.uri).name: d for d in svc.documents("docs")}
    texts = {n: " ".join(c.text for c in svc.chunks("docs", d.id)) for n, d in ner_docs.items()}
    for n, d in ner_docs.items():
        assert "Thornton" not in texts[n] + d.title + "".join(
            c.section for c in svc.chunks("docs", d.id)
        )
    assert "Lisbon" not in texts["a.md"] and ner_docs["a.md"].pii_counts["LOCATION"] == 1
    tokens = {n: set(re.findall(r"<PERSON_[0-9a-f]{8}>", t)) for n, t in texts.items()}
    assert len(tokens["a.md"]) == 1 and tokens["a.md"] == tokens["b.txt"], "same name, same token"
    assert re.search(r"<EMAIL_[0-9a-f]{8}>", texts["b.txt"])
    info = svc.collection("docs")
    indexes, _ = svc.open_indexes(info)
    assert indexes.lexical.search("thornton margaret", 5).ids.size == 0
    other = make_service()
    ingest(other, docs, "second", pii_ner=True, pii_mode="pseudonym")
    second = next(d for d in other.documents("second") if d.uri.endswith("b.txt"))
    again = set(re.findall(r"<PERSON_[0-9a-f]{8}>", other.chunks("second", second.id)[0].text))
    assert again and again != tokens["b.txt"], "another collection has its own salt"


def test_acls(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service()
    docs = tmp_path / "docs"
    write(docs, "open.md", "# Open\n\nEveryone may read this.")
    write(docs, "hr/salaries.md", "# Salaries\n\nConfidential numbers.")
    write(docs, "hr/.acl.json", '{"allow": ["group:hr"], "tenant": "acme"}')
    write(docs, "board.md", "# Board\n\nMinutes.")
    write(docs, "board.md.acl.json", '{"allow": ["user:ceo", "group:board"]}')
    ingest(svc, docs)
    acl = {Path(d.uri).name: d.principals for d in svc.documents("docs")}
    assert acl == {
        "open.md": ("user:alice",),
        "salaries.md": ("group:hr",),
        "board.md": ("group:board", "user:ceo"),
    }, "private to the ingester by default"
    pub = make_service(data_dir=tmp_path / "pub")
    ingest(pub, docs, "pubdocs", public=True)
    acl = {Path(d.uri).name: d.principals for d in pub.documents("pubdocs")}
    assert acl["open.md"] == ("public",) and acl["salaries.md"] == ("group:hr",)
    grp = make_service(data_dir=tmp_path / "grp")
    ingest(grp, docs, "eng", allow=("group:eng",))
    assert {d.principals for d in grp.documents("eng")} >= {("group:eng",)}
    with pytest.raises(InputError):
        ingest(grp, docs, "bad", allow=("alice",))


def test_bad_inputs_are_reported_and_lose_nothing(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service(max_file_bytes=2000)
    docs = tmp_path / "docs"
    write(docs, "good.md", "# Good\n\nA fine document.")
    (docs / "latin1.txt").write_bytes("Café crème, déjà vu à la carte.".encode("latin-1"))
    (docs / "utf16.txt").write_bytes("Grüße aus Köln".encode("utf-16"))
    (docs / "empty.txt").write_bytes(b"")
    (docs / "blank.md").write_text("   \n\n  ")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02garbage" * 10)
    (docs / "song.mp3").write_bytes(b"ID3" + b"\x00" * 100)
    (docs / "big.txt").write_text("word " * 1000)
    write(docs, "copy1.md", "# Same\n\nIdentical duplicate content here.")
    write(docs, "copy2.md", "# Same\n\nIdentical duplicate content here.")
    (docs / "loop").symlink_to(docs)
    summary = svc.ingest(IngestRequest("docs", [SourceSpec(str(docs))]), principal="user:alice")
    problems = {Path(p.uri).name: (p.kind, p.reason) for p in summary.problems}
    assert summary.ingested == 5  # good, latin1, utf16, copy1, copy2
    assert problems["empty.txt"][0] == "empty" and problems["blank.md"][0] == "empty"
    assert problems["binary.txt"][0] == "corrupt"
    assert problems["song.mp3"][0] == "unsupported"
    assert problems["big.txt"][0] == "too_large" and "2,000-byte limit" in problems["big.txt"][1]
    assert summary.chunks_reused >= 1, "the duplicate's chunk reuses the stored vector"
    texts = {Path(d.uri).name: d for d in svc.documents("docs")}
    latin = svc.chunks("docs", texts["latin1.txt"].id)[0].text
    assert "Café crème" in latin
    assert "Grüße" in svc.chunks("docs", texts["utf16.txt"].id)[0].text
    assert svc.check_index("docs").ok


def test_each_collection_keeps_its_embedder(make_service: Factory, tmp_path: Path) -> None:
    """A collection embeds with the model it pinned, whatever the default of new ones is;
    the two models are loaded side by side, each with its own memo."""
    docs = tmp_path / "docs"
    write(docs, "a.md", "# A\n\nthe vacation policy lets you carry over five days")
    ingest(make_service(), docs)  # hashing-64
    svc = make_service(embedder="int8")
    write(docs, "b.md", "# B\n\nthe on-call rotation pages the site reliability team")
    counts = ingest(svc, docs)  # into the hashing collection: no conflict
    assert counts["ingested"] == 1 and counts["unchanged"] == 1
    assert svc.collection("docs").embedder_id == "hashing-64"
    hits = svc.search("docs", "on-call rotation", principals=["user:alice"], mode="dense").hits
    assert hits and hits[0].uri.endswith("b.md")
    ingest(svc, docs, collection="fresh")
    fresh = svc.collection("fresh")
    assert fresh.embedder_id == "sentence-transformers/all-MiniLM-L6-v2+int8" and fresh.dim == 384
    hits = svc.search("fresh", "who gets paged", principals=["user:alice"], mode="dense").hits
    assert hits[0].uri.endswith("b.md")
    assert set(svc.c.models.loaded()) == {"hashing-64", fresh.embedder_id}
    assert svc.c.models.get("hashing-64").memo is not svc.c.memo


def test_a_pinned_model_that_cannot_run_says_why(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service()
    for model_id, message in (
        ("local:my-bert+int8", "RAGSTACK_EMBEDDER_MODEL_PATH"),
        ("acme/unknown", "RAGSTACK_EMBEDDER_MODEL_PATH"),
    ):
        svc.store.create_collection(
            name=model_id.replace("/", "-").replace(":", "-").replace("+", "-"),
            owner="user:alice", tenant=None, embedder_id=model_id, dim=384,
            vector_backend="hnsw", pii_mode="mask", pii_ner=False, default_acl=["user:alice"],
        )  # fmt: skip
        name = model_id.replace("/", "-").replace(":", "-").replace("+", "-")
        with pytest.raises(ConfigError, match=message):
            svc.search(name, "anything", principals=["user:alice"])


def test_models_are_bounded_and_keep_the_default() -> None:
    from ragstack.answering import MemoEmbed
    from ragstack.embedders import Model, Models
    from ragstack.embedding import HashingEmbedder
    from ragstack.ingest.chunking import Chunker, WordCounter

    built: list[str] = []

    def load(model_id: str) -> Model:
        built.append(model_id)
        e = HashingEmbedder(int(model_id.split("-")[1]))
        return Model(e, Chunker(WordCounter(), max_tokens=64, overlap_tokens=0), MemoEmbed(e))

    models = Models("hashing-8", load, capacity=2)
    assert models.default().embedder.dim == 8
    assert models.get("hashing-16") is models.get("hashing-16")
    models.get("hashing-32")  # evicts hashing-16, never the default
    assert models.loaded() == ["hashing-8", "hashing-32"]
    models.get("hashing-16")
    assert built == ["hashing-8", "hashing-16", "hashing-32", "hashing-16"]


def test_chunks_know_their_place(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service()
    docs = tmp_path / "docs"
    body = " ".join(f"Sentence number {i} says something." for i in range(60))
    write(docs, "long.md", f"# Guide\n\n## Setup\n{body}\n\n## Usage\nShort usage notes.")
    ingest(svc, docs)
    doc = svc.documents("docs")[0]
    chunks = svc.chunks("docs", doc.id)
    assert len(chunks) >= 3
    assert chunks[0].section == "Guide > Setup" and chunks[-1].section == "Guide > Usage"
    assert all(c.token_count <= 64 for c in chunks)
    info = svc.collection("docs")
    with svc.store.session() as s:
        from ragstack.store.models import DocumentRow

        row = s.get(DocumentRow, doc.id)
        assert row is not None
        for c in chunks:
            assert row.text[c.char_start : c.char_end] == c.text
    indexes, _ = svc.open_indexes(info)
    hits = indexes.lexical.search("usage notes", 1, IdFilter([c.id for c in chunks]))
    assert hits.ids[0] == chunks[-1].id


def test_batches_embedded_ahead_keep_each_chunk_its_vector(
    make_service: Factory, tmp_path: Path
) -> None:
    """Batches are embedded on a model thread while the batch before is written: over many
    batches (and a text repeated across them), every chunk stores its own text's vector."""
    from sqlalchemy import text

    from ragstack.embedding import HashingEmbedder
    from ragstack.store import index_text

    svc = make_service()
    docs = tmp_path / "docs"
    for i in range(40):
        body = " ".join(f"Document {i} sentence {j} about topic {i * j}." for j in range(100))
        write(docs, f"d{i:02d}.md", f"# Doc {i}\n\n{body}\n\nThe same closing line.")
    counts = ingest(svc, docs)
    assert counts["ingested"] == 40 and counts["chunks"] > 2 * 256  # several commit batches
    with svc.store.engine.connect() as con:
        rows = con.execute(text("SELECT section, text, embedding FROM chunks ORDER BY id")).all()
    assert len(rows) == counts["chunks"]
    expected = HashingEmbedder(64).embed([index_text(sec, t) for sec, t, _ in rows])
    stored = np.vstack([np.frombuffer(e, dtype=np.float32) for _, _, e in rows])
    np.testing.assert_array_equal(stored, expected)
    assert svc.check_index("docs").ok
    assert ingest(svc, docs)["unchanged"] == 40


@pytest.mark.slow
def test_real_model_handbook(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service(
        embedder="sentence-transformers", chunk_max_tokens=256, chunk_overlap_tokens=32
    )
    counts = ingest(svc, HANDBOOK)
    assert counts["ingested"] == 10 and counts["failed"] == 0
    info = svc.collection("docs")
    assert info.embedder_id.endswith("all-MiniLM-L6-v2") and info.dim == 384
    indexes, _ = svc.open_indexes(info)
    q = svc.c.embedder.embed(["how many vacation days can I carry over"])
    best = int(indexes.dense.search(q, 1).ids[0, 0])
    with svc.store.session() as s:
        from ragstack.store.models import ChunkRow, DocumentRow

        chunk = s.get(ChunkRow, best)
        assert chunk is not None
        doc = s.get(DocumentRow, chunk.document_id)
        assert doc is not None and doc.uri.endswith("vacation-policy.md")
        assert "carried over" in chunk.text


def test_ingest_from_a_web_site_on_loopback(make_service: Factory, tmp_path: Path) -> None:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(
        "<html><title>Home</title><h1>Welcome</h1>"
        "<p>Contact sales@example.com.</p><a href='faq.html'>FAQ</a>"
        "</html>"
    )
    (site / "faq.html").write_text(
        "<html><title>FAQ</title><h1>FAQ</h1><p>Refunds take five days.</p></html>"
    )

    requests: list[str] = []

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        svc = make_service()
        remote = svc.ingest(  # as the API asks: loopback is refused, nothing is fetched
            IngestRequest("web", [SourceSpec(url, crawl_depth=1)]), principal="user:alice"
        )
        assert not requests and remote.ingested == 0
        assert [p.kind for p in remote.problems] == ["refused"]
        summary = svc.ingest(  # as the CLI asks (RAGSTACK_CLI_FETCH_PRIVATE, on by default)
            IngestRequest("web", [SourceSpec(url, crawl_depth=1)], trusted=True),
            principal="user:alice",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert summary.ingested == 2 and summary.failed == 0, summary.problems
    stored = all_stored_text(svc)
    assert "Refunds take five days." in stored and "sales@example.com" not in stored


def test_overlapping_roots_never_duplicate(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service()
    docs = tmp_path / "docs"
    write(docs, "top.md", "# Top\n\nTop level.")
    write(docs, "sub/inner.md", "# Inner\n\nInner text.")
    assert ingest(svc, docs)["ingested"] == 2
    again = ingest(svc, docs / "sub")
    assert again["unchanged"] == 1 and again["ingested"] == 0
    write(docs, "sub/inner.md", "# Inner\n\nChanged inner text.")
    assert ingest(svc, docs / "sub")["updated"] == 1
    assert ingest(svc, docs)["unchanged"] == 2
    assert sorted(Path(d.uri).name for d in svc.documents("docs")) == ["inner.md", "top.md"]
    assert svc.check_index("docs").ok
