"""The live API (uvicorn child process) never fetches what a caller points it at on a private
network: every hostile URL of ``evals.ssrf`` is submitted, and a listener on the forbidden
loopback addresses must see no connection at all. Also: decompression bombs arriving by URL
and by upload are recorded ``too_large`` while the server's memory stays bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from evals.bench_api import rss_mb
from evals.bombs import gzip_bomb, zip_bomb
from evals.ssrf import SERVER_ENV, Targets, hostile_targets, run_cases, wait_job
from tests.api.conftest import Server, serve

MAX_FILE = 4 << 20


@pytest.fixture(scope="module")
def targets() -> Iterator[Targets]:
    with hostile_targets() as made:
        yield made


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {**SERVER_ENV, "RAGSTACK_MAX_FILE_BYTES": str(MAX_FILE)}
    with serve(tmp_path_factory.mktemp("ssrf"), env=env) as served:
        yield served


def test_no_hostile_url_reaches_the_forbidden_listener(api: Server, targets: Targets) -> None:
    report = run_cases(api.url, api.headers, "kb", targets)
    by_name = {r.case.name: r for r in report.results}
    assert report.reached == 0, [(r.case.name, r.reached) for r in report.results if r.reached]
    assert targets.listener.connections == 0
    assert report.summary() == {
        "cases": len(report.results),
        "ssrf_reached": 0,
        "unnamed_rule": [],
        "leaks": {},
    }, [(r.case.name, r.status, r.message, r.errors) for r in report.results]
    # refused at once, naming the rule, for literal addresses and localhost names
    for name in ("ipv4", "decimal", "hex", "octal", "ipv6-loopback", "ipv4-mapped", "zero"):
        assert by_name[name].status == 400, name
        assert "refused:" in by_name[name].message and "address" in by_name[name].message
    assert "loopback address (IPv4-mapped)" in by_name["ipv4-mapped"].message
    assert "RAGSTACK_FETCH_ALLOW" in by_name["ipv4"].message
    assert "link-local" in by_name["metadata"].message
    assert "loopback name" in by_name["localhost"].message
    assert by_name["uppercase-scheme"].status == 400 and by_name["gopher"].status == 400
    # the allowed site was fetched, what it led to was not
    redirect = by_name["redirect"].errors
    assert [e["kind"] for e in redirect] == ["off_site"], redirect
    sitemap = by_name["sitemap"]
    assert sitemap.job_status == "completed"
    assert [e["kind"] for e in sitemap.errors] == ["off_site"], sitemap.errors
    robots = by_name["robots-redirect"].errors
    assert [e["kind"] for e in robots] == ["refused"] and "loopback" in robots[0]["reason"]
    assert "/page" in targets.site.hits and "/redirect" in targets.site.hits


def test_a_page_that_inflates_past_the_limit_is_too_large(api: Server, targets: Targets) -> None:
    bomb = gzip_bomb(1024)  # 1 MB on the wire, 1 GiB inflated
    targets.site.routes["/bomb.html"] = (
        200, "text/html", {"Content-Encoding": "gzip"}, bomb,
    )  # fmt: skip
    targets.site.routes["/sitemap-bomb.xml.gz"] = (200, "application/gzip", {}, gzip_bomb(256))
    before = rss_mb(api.pid)
    with httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as client:
        for path in ("/bomb.html", "/sitemap-bomb.xml.gz"):
            r = client.post("/v1/collections/kb/documents", data={"url": targets.site.base + path})
            assert r.status_code == 202, r.text
            job = wait_job(client, r.json()["id"])
            assert job["status"] == "completed", job
            errors = job["errors"]
            assert isinstance(errors, list) and [e["kind"] for e in errors] == ["too_large"], job
            assert f"{MAX_FILE:,}-byte limit" in errors[0]["reason"]
    grown = rss_mb(api.pid) - before
    assert grown < 64, f"the server grew {grown:.0f} MB inflating a 1 GiB bomb"


def test_zip_bombs_uploaded_are_too_large_and_the_rest_is_ingested(api: Server) -> None:
    files = [
        ("files", ("bomb.docx", zip_bomb("docx"), "application/octet-stream")),
        ("files", ("bomb.xlsx", zip_bomb("xlsx", 100), "application/octet-stream")),
        ("files", ("bomb.epub", zip_bomb("epub"), "application/epub+zip")),
        ("files", ("note.md", b"# Note\n\nThe zip bomb did not stop this one.", "text/markdown")),
    ]
    before = rss_mb(api.pid)
    with httpx.Client(base_url=api.url, headers=api.headers, timeout=30) as client:
        r = client.post("/v1/collections/kb/documents", files=files)
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"])
    assert job["status"] == "completed", job
    errors = job["errors"]
    assert isinstance(errors, list)
    kinds = {str(e["uri"]).rsplit("/", 1)[-1]: e["kind"] for e in errors}
    assert kinds == {"bomb.docx": "too_large", "bomb.xlsx": "too_large", "bomb.epub": "too_large"}
    counts = job["counts"]
    assert isinstance(counts, dict) and counts["ingested"] == 1 and counts["failed"] == 3
    assert rss_mb(api.pid) - before < 64


def test_bench_security_entry_counts_cases_and_reached(tmp_path: Path) -> None:
    from evals import ssrf

    cases, reached = ssrf.run(tmp_path)
    assert cases >= 30 and reached == 0
