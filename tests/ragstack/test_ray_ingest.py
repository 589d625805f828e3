"""``--executor ray``: a real local Ray (Ray Data actors) prepares and embeds, the driver
commits. The result equals in-process ingest document for document, vector for vector, on
SQLite and on PostgreSQL; it is incremental and reports per-file problems the same way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ragstack.service import IngestRequest, Ragstack, SourceSpec
from tests.ragstack.conftest import Factory

BOTH_BACKENDS = True


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    yield
    import ray

    ray.shutdown()


def snapshot(svc: Ragstack, collection: str) -> dict[str, list[tuple[str, bytes]]]:
    info = svc.collection(collection)
    out = {}
    for doc in svc.documents(collection):
        chunks = svc.chunks(collection, doc.id)
        ids = [c.id for c in chunks]
        _ids, vectors, _texts = svc.store.chunk_payloads(ids, info.dim)
        out[Path(doc.uri).name] = [
            (c.text, np.round(v, 5).tobytes()) for c, v in zip(chunks, vectors, strict=True)
        ]
    return out


def test_ray_ingest_equals_local_ingest(make_service: Factory, tmp_path: Path) -> None:
    svc = make_service()
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"note{i:02d}.md").write_text(
            f"# Note {i}\n\nRelease {i} ships on Friday. Ask jane{i}@example.org.\n\n"
            + "More text about the rollout. " * (i % 7 + 1),
            encoding="utf-8",
        )
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (docs / "binary.bin").write_bytes(bytes(range(256)))

    def run(collection: str, executor: str) -> dict[str, int]:
        request = IngestRequest(collection, [SourceSpec(str(docs))], public=True, executor=executor)
        summary = svc.ingest(request, principal="user:alice")
        counts = summary.counts()
        counts["problems"] = len(summary.problems)
        return counts

    local, ray = run("local", "local"), run("viaray", "ray")
    assert local == ray and ray["ingested"] == 30 and ray["problems"] == 2
    assert snapshot(svc, "viaray") == snapshot(svc, "local")
    stored = " ".join(t for chunks in snapshot(svc, "viaray").values() for t, _v in chunks)
    assert "jane3@" not in stored and "<EMAIL>" in stored
    assert svc.check_index("viaray").ok
    hits = svc.search("viaray", "release 17 friday", principals=["user:x"], mode="bm25").hits
    assert Path(hits[0].uri).name == "note17.md"

    (docs / "note03.md").write_text("# Note 3\n\nNow about gardening.", encoding="utf-8")
    (docs / "note04.md").unlink()
    again = run("viaray", "ray")
    assert (again["updated"], again["deleted"], again["unchanged"]) == (1, 1, 28)
    assert svc.check_index("viaray").ok
    hits = svc.search("viaray", "gardening", principals=["user:x"], mode="bm25").hits
    assert [Path(h.uri).name for h in hits] == ["note03.md"]
