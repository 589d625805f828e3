"""Hostile inputs through the service and the CLI: an ingest asked for by a remote caller
fetches no private address even when it crawls or bypasses the API's own check, and zip bombs
are recorded ``too_large`` while the rest of the ingest goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.bombs import zip_bomb
from evals.ssrf import FORBIDDEN_HOST, hostile_targets
from ragstack.cli import app
from ragstack.errors import InputError
from ragstack.service import IngestRequest, SourceSpec
from tests.ragstack.conftest import Factory


def test_remote_ingests_fetch_no_private_address(make_service: Factory) -> None:
    svc = make_service(fetch_allow=("127.0.0.2/32",))
    with hostile_targets() as targets:
        port = targets.listener.port
        direct = [f"http://{FORBIDDEN_HOST}:{port}/", f"http://2130706435:{port}/",
                  f"http://[::ffff:{FORBIDDEN_HOST}]:{port}/", f"http://[::1]:{port}/",
                  f"http://localhost:{port}/"]  # fmt: skip
        sources = [SourceSpec(u) for u in direct]  # the API refuses these before any job
        # the sitemap lists the listener and /page, whose link to the listener is crawled
        sources.append(SourceSpec(f"{targets.site.base}/sitemap.xml", crawl_depth=3))
        summary = svc.ingest(IngestRequest("web", sources), principal="user:alice")
        assert targets.listener.connections == 0
        assert targets.site.hits.count("/page") == 1, "the allowed site is fetched"
    problems = {p.uri: p for p in summary.problems}
    for url in direct:
        assert problems[url].kind == "refused", problems[url]
        assert problems[url].reason.startswith("refused: ")
        assert "RAGSTACK_FETCH_ALLOW" in problems[url].reason
    assert summary.ingested == 1 and problems[f"{targets.site.base}/sitemap.xml"].kind == "off_site"
    with pytest.raises(InputError, match="loopback address"):
        svc.check_url(f"http://{FORBIDDEN_HOST}/", trusted=False)
    svc.check_url(f"http://{FORBIDDEN_HOST}/", trusted=True)  # the CLI may (the default)
    strict = make_service(cli_fetch_private=False)
    with pytest.raises(InputError, match="RAGSTACK_CLI_FETCH_PRIVATE"):
        strict.check_url("http://10.0.0.1/", trusted=True)


def test_cli_records_zip_bombs_as_too_large_and_ingests_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bomb.docx").write_bytes(zip_bomb("docx"))
    (docs / "bomb.odt").write_bytes(zip_bomb("odt", 100))
    (docs / "bomb.pptx").write_bytes(zip_bomb("pptx", lie=True))
    (docs / "notes.md").write_text("# Notes\n\nThe bombs did not stop this file.\n")
    env = {
        "RAGSTACK_DATA_DIR": str(tmp_path / "data"),
        "RAGSTACK_EMBEDDER": "hashing",
        "RAGSTACK_PRINCIPAL": "user:alice",
    }
    result = CliRunner().invoke(app, ["ingest", str(docs), "-c", "kb", "--json"], env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    kinds = {Path(p["uri"]).name: p["kind"] for p in out["problems"]}
    assert kinds == {"bomb.docx": "too_large", "bomb.odt": "too_large", "bomb.pptx": "too_large"}
    assert out["ingested"] == 1 and out["failed"] == 3
