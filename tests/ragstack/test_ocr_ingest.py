"""OCR through ingest: a collection's ``--ocr`` mode, parser settings as part of each
document's version (turning OCR on re-parses the documents it affects, and only those), the
OCR mark on hits, chunks and citations, and OCR pages in the summary. Real Tesseract."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from evals.pdf_render import render, scan_of
from ragstack.answering import AnswerRequest
from ragstack.errors import InputError
from ragstack.service import IngestRequest, SourceSpec
from tests.ragstack.conftest import Factory

SCANNED = "Zanamivir prophylaxis stopped the outbreak within nine days."
PICTURED = "Quarantine rota: ward seven rotates every fortnight."


pytestmark = pytest.mark.usefixtures("tesseract")  # tests/conftest.py: real Tesseract


def png_of(text: str) -> bytes:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(render("single", "Notice", text, random.Random(1)))
    image = doc[0].render(scale=200 / 72, grayscale=True).to_pil()
    doc.close()
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def corpus(folder: Path) -> Path:
    import docx

    folder.mkdir()
    (folder / "notes.md").write_text("# Notes\n\nPlain notes about the ward schedule.\n")
    text_pdf = render("single", "Report", "Hand hygiene audits improved.", random.Random(1))
    (folder / "report.pdf").write_bytes(text_pdf)
    scan = scan_of(render("single", "Memo", SCANNED, random.Random(2)), random.Random(0), 200, 0)
    (folder / "memo.pdf").write_bytes(scan)
    plain = docx.Document()
    plain.add_paragraph("A document without pictures.")
    plain.save(str(folder / "plain.docx"))
    pictured = docx.Document()
    pictured.add_paragraph("The rota is in the picture.")
    pictured.add_picture(io.BytesIO(png_of(PICTURED)))
    pictured.save(str(folder / "rota.docx"))
    return folder


def test_turning_ocr_on_reparses_only_what_it_affects(
    tmp_path: Path, make_service: Factory
) -> None:
    folder = corpus(tmp_path / "docs")
    svc = make_service()
    off = svc.ingest(
        IngestRequest("c", [SourceSpec(str(folder))], ocr="off"), principal="user:alice"
    )
    assert off.ingested == 4 and off.ocr_pages == 0
    assert [(p.uri.rsplit("/", 1)[-1], p.kind) for p in off.problems] == [("memo.pdf", "empty")]
    assert "OCR" in off.problems[0].reason and "off" in off.problems[0].reason
    assert not svc.search("c", "zanamivir", principals=["user:alice"], mode="bm25").hits

    again = svc.ingest(IngestRequest("c", [SourceSpec(str(folder))]), principal="user:alice")
    assert again.unchanged == 4 and again.ingested == 0  # the mode is the collection's: off

    on = svc.ingest(
        IngestRequest("c", [SourceSpec(str(folder))], ocr="auto"), principal="user:alice"
    )
    # memo.pdf (a scan) is new; rota.docx (a picture) is parsed again; the other three are not
    assert (on.ingested, on.updated, on.unchanged) == (1, 1, 3)
    assert on.ocr_pages == 2 and on.ocr_seconds > 0 and not on.problems
    assert on.counts()["ocr_pages"] == 2

    for query, name in (
        ("zanamivir outbreak", "memo.pdf"),
        ("quarantine rota fortnight", "rota.docx"),
    ):
        hits = svc.search("c", query, principals=["user:alice"], mode="bm25").hits
        assert hits and hits[0].uri.endswith(name) and hits[0].ocr, (query, hits[:1])
        assert hits[0].page == (1 if name == "memo.pdf" else None)
    notes = svc.search("c", "ward schedule notes", principals=["user:alice"], mode="bm25").hits
    assert notes and not notes[0].ocr
    docs = {d.uri.rsplit("/", 1)[-1]: d for d in svc.documents("c")}
    chunks = svc.chunks("c", docs["rota.docx"].id)
    assert any(c.ocr for c in chunks) and any(not c.ocr for c in chunks)  # never mixed

    unchanged = svc.ingest(IngestRequest("c", [SourceSpec(str(folder))]), principal="user:alice")
    assert unchanged.unchanged == 5 and unchanged.ocr_pages == 0


def test_answers_mark_ocr_citations(tmp_path: Path, make_service: Factory) -> None:
    folder = corpus(tmp_path / "docs")
    svc = make_service(extractive_min_score=0.0)  # the hashing embedder scores low
    svc.ingest(IngestRequest("c", [SourceSpec(str(folder))]), principal="user:alice")
    response = svc.ask(AnswerRequest("c", "What did zanamivir prophylaxis stop?", ("user:alice",)))
    data = response.to_dict()
    memo = [s for s in data["sources"] if s["uri"].endswith("memo.pdf")]
    assert memo and memo[0]["ocr"] is True
    assert data["citations"], data["answer"]
    by_chunk = {src["chunk_id"]: src for src in data["sources"]}
    for c in data["citations"]:  # a citation of OCR'd text says so
        assert c["ocr"] is by_chunk[c["chunk_id"]]["ocr"]
    assert any(c["ocr"] for c in data["citations"])


def test_unknown_ocr_mode_is_refused(tmp_path: Path, make_service: Factory) -> None:
    folder = corpus(tmp_path / "docs")
    with pytest.raises(InputError, match="OCR mode"):
        make_service().ingest(
            IngestRequest("c", [SourceSpec(str(folder))], ocr="sometimes"), principal="user:alice"
        )


def test_versions_carry_the_parser_tag() -> None:
    from ragstack.ingest.items import is_unchanged, stored_version
    from ragstack.parsing import DocumentParser

    parser = DocumentParser()
    plain, scanned = (
        stored_version("sha256:a", parser.tag(False)),
        stored_version("sha256:a", parser.tag(True)),
    )
    assert is_unchanged(plain, "sha256:a", parser)
    assert is_unchanged(scanned, "sha256:a", parser)
    assert not is_unchanged(plain, "sha256:b", parser)  # new bytes
    off = parser.with_ocr_mode("off")
    assert is_unchanged(plain, "sha256:a", off)  # OCR cannot change it
    assert not is_unchanged(scanned, "sha256:a", off)  # OCR can
    assert not is_unchanged("sha256:a", "sha256:a", parser)  # stored by an older ragstack
