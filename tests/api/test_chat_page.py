"""The chat page (``/ui``) in a real browser: Debian's headless Chromium driven by Playwright's
Python package (no ``playwright install``), against ``ragstack serve`` on a loopback port over
the handbook with the real MiniLM embedder and the extractive generator.

A reader (bob: not in group:hr) signs in, asks, watches the answer stream in, follows up with a
question that omits its subject and gets a cited answer, opens [1] and sees the supporting
characters marked inside the source and in the whole document; he cannot see ``hr-only`` in the
picker, and a direct URL to it, or to a chunk of the hidden benefits.md, is refused like a
missing one. Search mode shows hits. A writer uploads a hostile file (``<script>``, an ``<img
onerror>``) and watches its job finish; its text then shows as text and runs nothing. The
session is the admin page's kind: the key is in no cookie and nowhere in the page, and a POST
without the session's CSRF token is refused. Screenshots go to ``.cache/test-artifacts/chat-*``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstack.demo import SAMPLE_DIR as HANDBOOK
from tests.api.conftest import Live, live_server
from tests.api.test_browser import CHROMIUM, FLAGS, need_chromium

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / ".cache" / "test-artifacts"
FIRST = "How many days of paid annual leave do employees get?"
FOLLOW_UP = "and how many can I carry over?"
HOSTILE = (
    "Zebrafish release notes.\n\n"
    "<script>window.pwned = 1</script>\n\n"
    '<img src="x" onerror="window.pwned = 2">\n\n'
    "The zebrafish release ships every Friday after the checks pass.\n"
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    need_chromium()
    with live_server(tmp_path_factory.mktemp("chat"), "sentence-transformers") as server:
        made = httpx.post(f"{server.url}/v1/keys", headers=server.headers("admin"),
                          json={"principal": "user:wendy", "role": "writer"})  # fmt: skip
        made.raise_for_status()
        server.keys["wendy"] = made.json()["secret"]
        yield server


@pytest.fixture(scope="module")
def browser(live: Live) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def sign_in(browser: Any, live: Live, who: str) -> Any:
    """A new browser context signed in as ``who``; its page is on ``/ui``."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    page.goto(f"{live.url}/")
    assert page.url == f"{live.url}/ui/login"
    page.fill("#key", "rsk_not_a_key")
    page.click("#login")
    expect(page.locator("#error")).to_contain_text("not a live API key")
    page.fill("#key", live.keys[who])
    page.click("#login")
    expect(page.locator("#who")).to_contain_text(f"user:{who}")
    assert page.url == f"{live.url}/ui"
    return page


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"chat-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def flat(text: str) -> str:
    return " ".join(text.split())


def ask(page: Any, question: str) -> Any:
    """Ask on the page; the assistant turn once its answer has arrived."""
    from playwright.sync_api import expect

    before = page.locator(".turn.assistant").count()
    page.fill("#question", question)
    page.click("#ask")
    turn = page.locator(".turn.assistant").nth(before)
    expect(turn).to_have_attribute("data-answered", "true", timeout=120_000)
    return turn


def test_a_reader_asks_follows_up_and_opens_a_highlighted_citation(
    live: Live, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = sign_in(browser, live, "bob")
    # bob reads the handbook but nothing of hr-only: it is not offered
    options = page.locator("#collection option").all_inner_texts()
    assert options == ["handbook"]
    first = ask(page, FIRST)
    assert int(first.get_attribute("data-deltas")) > 1  # it streamed in, piece by piece
    expect(first.locator(".answer")).to_contain_text("25 days")
    expect(first.locator(".searched")).to_have_text(FIRST)

    second = ask(page, FOLLOW_UP)
    assert int(second.get_attribute("data-deltas")) > 1
    # searched as the standalone question it stands for, from the turn before it
    searched = second.locator(".searched").inner_text()
    assert searched.startswith(FOLLOW_UP) and "annual leave" in searched
    cite = second.locator("a.cite").first
    expect(cite).to_have_text("[1]")
    cite.click()
    panel = page.locator("#source")
    expect(panel).to_be_visible()
    mark = panel.locator("mark")
    expect(mark).to_have_count(1)
    marked, shown = flat(mark.inner_text()), flat(panel.locator("#text").inner_text())
    source = flat((HANDBOOK / "vacation-policy.md").read_text())
    assert len(marked) > 20 and marked in shown and marked in source
    assert flat(shown) != marked  # the mark sits in its context
    expect(panel.locator("#source-title")).to_have_text("Vacation and leave policy")
    assert panel.locator("header, form").count() == 0  # the source's fragment, not a page
    first_shot = shot(page, "answer")

    panel.locator("#document-link").click()
    expect(page.locator("#document-title")).to_have_text("Vacation and leave policy")
    assert flat(page.locator("mark#cited").inner_text()) == marked
    assert "Parental leave" in page.locator("#text").inner_text()  # the whole document
    shot(page, "document")

    # the key is in no cookie and nowhere in the page; the cookie is the session's
    key = live.keys["bob"]
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "ragstack_ui" and key not in cookie["value"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    page.goto(f"{live.url}/ui")
    assert key not in page.content() and page.evaluate("document.cookie") == ""
    assert first_shot.exists()


def test_hidden_collections_and_documents_are_refused_like_missing_ones(
    live: Live, browser: Any
) -> None:
    page = sign_in(browser, live, "bob")
    hidden = page.goto(f"{live.url}/ui?c=hr-only")
    assert hidden is not None and hidden.status == 404
    hidden_text = page.locator("h1").inner_text()
    missing = page.goto(f"{live.url}/ui?c=no-such")
    assert missing is not None and missing.status == 404
    assert page.locator("h1").inner_text() == hidden_text == "no such collection"
    assert page.goto(f"{live.url}/ui/source?c=hr-only&chunk=c_0000000000000000").status == 404

    # a chunk and a document of benefits.md (group:hr only), which alice can read
    asked = {"collection": "handbook", "query": "learning budget"}
    found = httpx.post(f"{live.url}/v1/search", headers=live.headers("alice"), json=asked).json()
    (hit, *_) = [h for h in found["hits"] if h["uri"].endswith("benefits.md")]
    for url in (f"/ui/source?c=handbook&chunk={hit['chunk_id']}",
                f"/ui/documents/{hit['document_id']}?c=handbook"):  # fmt: skip
        refused = page.goto(f"{live.url}{url}")
        assert refused is not None and refused.status == 404, url
        assert "Learning budget" not in page.content()

    # alice, in group:hr, is offered both
    alice = sign_in(browser, live, "alice")
    assert alice.locator("#collection option").all_inner_texts() == ["handbook", "hr-only"]
    # and she sees her document where bob was refused
    assert alice.goto(f"{live.url}/ui/documents/{hit['document_id']}?c=handbook").status == 200
    assert "Learning budget" in alice.locator("#text").inner_text()

    # a POST without the session's CSRF token is refused, with the session cookie or not
    status = page.evaluate(
        """async () => (await fetch("/ui/ask", {method: "POST",
             headers: {"Content-Type": "application/json"},
             body: JSON.stringify({collection: "handbook", question: "annual leave"})})).status"""
    )
    assert status == 403
    # a reader has no upload form, and a forged upload (with the CSRF token) is refused
    page.goto(f"{live.url}/ui")
    assert page.locator("#upload-form").count() == 0
    status = page.evaluate(
        """async () => {
             const form = new FormData();
             form.append("csrf", document.querySelector('meta[name="csrf-token"]').content);
             form.append("files", new Blob(["hello"]), "x.txt");
             return (await fetch("/ui/collections/handbook/documents",
                                 {method: "POST", body: form})).status }"""
    )
    assert status == 403


def test_search_mode_shows_hits(live: Live, browser: Any) -> None:
    from playwright.sync_api import expect

    page = sign_in(browser, live, "bob")
    page.click("#mode-search")
    page.fill("#query", "parental leave weeks")
    page.click("#search")
    hits = page.locator("#hits .hit")
    expect(hits.first).to_be_visible()
    assert hits.count() >= 3
    expect(hits.first.locator("p")).to_contain_text("Birth parents receive 20 weeks")
    texts = " ".join(hits.locator("p").all_inner_texts())
    assert "Learning budget" not in texts and "learning days" not in texts  # benefits.md: hidden
    hits.first.locator("a.source-link").click()
    expect(page.locator("#source mark")).to_contain_text("Birth parents receive 20 weeks")
    assert page.locator("#source header, #source form").count() == 0  # the fragment alone
    shot(page, "search")


def test_a_writer_uploads_a_hostile_file_watches_its_job_and_it_renders_inert(
    live: Live, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = sign_in(browser, live, "wendy")
    page.set_input_files("#files", files=[{"name": "zebrafish.txt", "mimeType": "text/plain",
                                           "buffer": HOSTILE.encode()}])  # fmt: skip
    page.click("#upload")
    assert re.search(r"/ui/jobs/[^/?]+\?c=handbook$", page.url), page.url
    expect(page.locator("#status")).to_have_text("completed", timeout=60_000)
    expect(page.locator("#progress")).to_contain_text("1 of 1 files")
    shot(page, "job")

    page.click("#back")
    page.click("#mode-search")
    page.fill("#query", "zebrafish release script")
    page.click("#search")
    hit = page.locator("#hits .hit", has_text="Zebrafish").first
    expect(hit).to_be_visible()
    text = hit.locator("p").inner_text()
    assert "<script>window.pwned = 1</script>" in text and "onerror" in text
    assert page.locator("#hits script, #hits img").count() == 0
    hit.locator("a.source-link").click()
    expect(page.locator("#source #text")).to_contain_text("<script>window.pwned = 1</script>")
    page.goto(f"{live.url}{hit.locator('a.source-link').get_attribute('href')}")
    assert page.locator("#text script, #text img").count() == 0
    page.click("#document-link")
    expect(page.locator("#document-title")).to_have_text("zebrafish")
    expect(page.locator("#text")).to_contain_text('<img src="x" onerror="window.pwned = 2">')
    assert page.locator("#text script, #text img").count() == 0
    shot(page, "hostile")
    assert page.evaluate("window.pwned") is None

    # the reader sees none of it: wendy's upload is hers alone
    bob = sign_in(browser, live, "bob")
    bob.goto(f"{live.url}/ui?c=handbook&mode=search&q=zebrafish")
    assert "Zebrafish" not in bob.locator("main").inner_text()


def test_an_answer_renders_escaped_with_its_citations_as_links() -> None:
    from ragstack.api.chat import _answer_event

    text = "Deploys run <script>alert(1)</script> on Tuesdays [1]. Also [2, 9]."
    cited = {"number": 1, "chunk_id": "c_1", "document_id": "d_1", "uri": "a.md", "title": "A",
             "char_start": 10, "char_end": 40, "supported": True}  # fmt: skip
    second = {**cited, "number": 2, "chunk_id": "c_2", "supported": False}
    answer = {
        "answer": text, "query": "when <b>deploys</b>", "abstained": False,
        "sentences": [{"start": 0, "end": 51, "citations": [1]},
                      {"start": 52, "end": len(text), "citations": [2]}],
        "citations": [cited, second],
        "sources": [{"number": n, "chunk_id": f"c_{n}", "uri": "a.md", "title": "<i>A</i>",
                     "section": "", "instruction_like": False} for n in (1, 2)],
    }  # fmt: skip
    html = _answer_event("kb", answer)["html"]
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>" not in html and "<i>" not in html
    assert 'href="/ui/source?c=kb&amp;chunk=c_1&amp;start=10&amp;end=40" data-n="1"' in html
    assert 'class="cite unsupported" href="/ui/source?c=kb&amp;chunk=c_2' in html
    assert "[9]" in html and 'data-n="9"' not in html  # no such source: plain text


def test_a_document_is_shown_once_from_overlapping_chunks_with_the_span_marked() -> None:
    from ragstack.api.chat import covered, marked
    from ragstack.domain import ChunkInfo

    text = "Alpha beta gamma. Delta epsilon zeta. Eta theta."
    spans = [(0, 23, "A"), (18, 37, "A"), (38, 48, "A > B")]
    chunks = [ChunkInfo(i, 1, i, text[a:b], s, None, a, b, 5, False)
              for i, (a, b, s) in enumerate(spans)]  # fmt: skip
    runs = covered(chunks)
    assert [(r.offset, r.text, r.section) for r in runs] == [
        (0, text[:37], "A"), (38, text[38:], "A > B")
    ]  # fmt: skip
    pieces = marked(runs, 18, 42)
    assert "".join(p.text for p in pieces if p.mark) == "Delta epsilon zeta." + "Eta "
    assert [p.heading for p in pieces] == ["A", "", "B", ""]
    assert not any(p.gap for p in pieces[:2]) and pieces[2].gap
