from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ragstack.app import build
from ragstack.config import Settings
from ragstack.demo import SAMPLE_DIR
from ragstack.service import Ragstack

Factory = Callable[..., Ragstack]

HANDBOOK = SAMPLE_DIR


def handbook_judgements(folder: Path) -> Path:
    """Two judged train queries over the demo's handbook, in BEIR layout under ``folder``."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "how many vacation days"}\n{"_id": "q2", "text": "laptop"}\n'
    )
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\tvacation-policy.md\t1\nq2\tsecurity-policy.md\t1\n"
    )
    return folder


@pytest.fixture
def make_service(tmp_path: Path, backend: str | None) -> Factory:
    """A ragstack on a fresh data dir; hashing embedder unless told otherwise; on the
    ``backend`` database in modules that run on both (``BOTH_BACKENDS``)."""
    database = backend

    def factory(**overrides: object) -> Ragstack:
        values: dict[str, object] = {
            "data_dir": tmp_path / "data",
            "embedder": "hashing",
            "principal": "user:alice",
            "chunk_max_tokens": 64,
            "chunk_overlap_tokens": 8,
            **({"database_url": database} if database else {}),
        }
        values.update(overrides)
        return build(Settings(**values))  # type: ignore[arg-type]

    return factory
