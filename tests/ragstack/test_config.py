"""Settings: environment, optional file, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ragstack.config import Settings


def test_env_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ragstack.env").write_text(
        "RAGSTACK_VECTOR_BACKEND=ivfpq\nRAGSTACK_PRINCIPAL=user:carol\n"
    )
    monkeypatch.setenv("RAGSTACK_PRINCIPAL", "user:dave")
    settings = Settings()
    assert settings.vector_backend == "ivfpq", "read from the file"
    assert settings.principal == "user:dave", "the environment wins"
    assert settings.resolved_database_url.endswith("data/ragstack.db")


@pytest.mark.parametrize(
    "bad",
    [
        {"principal": "carol"},
        {"vector_backend": "annoy"},
        {"chunk_max_tokens": 64, "chunk_overlap_tokens": 40},
        {"no_such_setting": 1},
    ],
)
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]
