"""A ragstack over a BEIR folder for the evals, ingested once and kept under ``.cache/evals``.

Ingest is incremental, so a second run finds every document unchanged in a second or two;
each embedder (backend, and local model dir if ``RAGSTACK_EMBEDDER_MODEL_PATH`` names one)
gets its own data dir (collections pin their embedder).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from evals.beir import REPO_ROOT
from ragstack.app import build
from ragstack.config import Settings
from ragstack.service import IngestRequest, Ragstack, SourceSpec

PRINCIPAL = "user:eval"


def default_reranker() -> Path | None:
    """``RAGSTACK_RERANKER_PATH`` if set, else the cross-encoder ``python -m
    evals.train_reranker`` writes, once it has been trained."""
    from evals.train_reranker import DEFAULT_OUT

    configured = Settings().reranker_path
    if configured is not None:
        return configured
    return DEFAULT_OUT if (DEFAULT_OUT / "config.json").is_file() else None


def eval_service(embedder: str | None = None, reranker: Path | None = None) -> Ragstack:
    """``reranker``: a cross-encoder directory (default ``RAGSTACK_RERANKER_PATH``, if set)."""
    base = Settings()
    chosen = embedder or base.embedder
    local = base.embedder_model_path
    data_dir = REPO_ROOT / ".cache" / "evals" / (f"{chosen}-{local.name}" if local else chosen)
    settings = Settings(data_dir=data_dir, principal=PRINCIPAL, embedder=chosen)
    if reranker is not None:
        settings = settings.model_copy(update={"reranker_path": reranker})
    return build(settings)


def ensure_collection(svc: Ragstack, data: Path, *, quiet: bool = False) -> str:
    """The collection holding ``data``'s corpus (named after the folder), ingested if needed."""
    name = data.resolve().name
    t0 = time.perf_counter()
    summary = svc.ingest(
        IngestRequest(name, [SourceSpec(str(data))], public=True), principal=PRINCIPAL
    )
    if not quiet and summary.ingested + summary.updated:
        print(
            f"ingested {summary.ingested + summary.updated:,} documents of {name} "
            f"({summary.chunks:,} chunks) in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )
    return name
