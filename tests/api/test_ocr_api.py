"""An uploaded scan is read by OCR, and the API marks what OCR read: hits and answer sources
carry ``ocr: true``, text from a text layer ``ocr: false``. Real Tesseract."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from evals.pdf_render import render
from tests.api.test_api import Api, make_api
from tests.api.test_uploads import upload

pytestmark = pytest.mark.usefixtures("tesseract")  # tests/conftest.py: real Tesseract


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = make_api(tmp_path)
    with made.client:
        yield made


def test_uploaded_scan_is_searchable_and_marked(api: Api) -> None:
    import pypdfium2 as pdfium

    pdf = render(
        "single", "Notice", "Peramivir infusions restarted on ward nine.", random.Random(1)
    )
    doc = pdfium.PdfDocument(pdf)
    image = doc[0].render(scale=200 / 72, grayscale=True).to_pil()
    doc.close()
    png = io.BytesIO()
    image.save(png, format="PNG")
    job = upload(api, api.writer, "notice.png", png.getvalue())
    assert job["status"] == "completed"
    body = {"collection": "kb", "query": "peramivir infusions", "mode": "bm25"}
    hits = api.client.post("/v1/search", json=body, headers=api.writer).json()["hits"]
    assert hits and hits[0]["uri"].endswith("notice.png") and hits[0]["ocr"] is True
    other = api.client.post(
        "/v1/search", json={**body, "query": "deploy"}, headers=api.writer
    ).json()["hits"]
    assert other and all(h["ocr"] is False for h in other)
