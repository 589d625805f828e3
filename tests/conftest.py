"""Shared fixtures. Tests never reach the network: models load from installed packages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``$RAGSTACK_SHARED_DATA`` or ``../shared/data`` beside the repository.

    CI always has it: there its absence fails the run. A fresh clone elsewhere skips the
    tests that need it, saying why.
    """
    env = os.environ.get("RAGSTACK_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not (path / "scifact" / "corpus.jsonl").is_file():
        message = f"evaluation data not found at {path} (set RAGSTACK_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
