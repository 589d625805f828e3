from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ragstack.app import build
from ragstack.config import Settings
from ragstack.service import Ragstack

Factory = Callable[..., Ragstack]


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
