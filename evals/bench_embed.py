"""Embedder benchmark: ``python -m evals.bench_embed [--json]``.

Embeds the same chunk-sized SciFact texts (documents chunked as ingest chunks them: 256
model tokens, section context included; a seeded sample) with the torch backend and the
onnx-int8 backend, in this process. The texts go in slices, each slice timed on torch and
then on ONNX, so that a change in machine load hits both alike; the ratio is what to read on
a busy machine. Both models are loaded (and ONNX exported, if not cached) before the clock.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.beir import REPO_ROOT, load_beir, shared_data_dir
from evals.report import Reporter
from ragstack.embedding import FloatMatrix, OnnxEmbedder, SentenceTransformerEmbedder
from ragstack.ingest.chunking import Block, Chunker, HfTokenCounter
from ragstack.store import index_text


def chunk_texts(data: Path, tokenizer: Path, window: int) -> list[str]:
    """Every chunk of the corpus, as the embedder sees it (section context, then text)."""
    chunker = Chunker(HfTokenCounter(tokenizer), max_tokens=window, overlap_tokens=32)
    texts = []
    for doc in load_beir(data).corpus:
        section = (doc.title,) if doc.title else ()
        _text, chunks = chunker.chunk([Block(doc.text, section=section)])
        texts += [index_text(c.section, c.text) for c in chunks]
    return texts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=shared_data_dir() / "scifact",
        help="BEIR folder (default ../shared/data/scifact)",
    )
    parser.add_argument("--sample", type=int, default=2000, help="chunk texts embedded")
    parser.add_argument("--slice", type=int, default=250, help="texts per alternation")
    parser.add_argument("--batch-size", type=int, default=16, help="texts per model batch")
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=REPO_ROOT / ".cache" / "models",
        help="where the ONNX export is cached (default .cache/models)",
    )
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)

    torch_model = SentenceTransformerEmbedder(batch_size=args.batch_size, threads=args.threads)
    onnx_model = OnnxEmbedder(
        cache_dir=args.cache_dir, batch_size=args.batch_size, threads=args.threads
    )
    t0 = time.perf_counter()
    torch_model.warm_up()
    torch_load_s = time.perf_counter() - t0
    import torch

    exported = not any(args.cache_dir.glob(f"*{onnx_model.cache_key()}*.onnx"))
    t0 = time.perf_counter()
    onnx_model.warm_up()
    onnx_load_s = time.perf_counter() - t0
    assert onnx_model.onnx_path is not None

    texts = chunk_texts(args.data, onnx_model.tokenizer_file, onnx_model.max_tokens)
    sample = random.Random(0).sample(texts, min(args.sample, len(texts)))
    for model in (torch_model, onnx_model):
        model.embed(sample[:32])  # first-call overheads off the clock

    seconds = {"torch": 0.0, "onnx": 0.0}
    parts: dict[str, list[FloatMatrix]] = {"torch": [], "onnx": []}
    for start in range(0, len(sample), args.slice):
        piece = sample[start : start + args.slice]
        for name, model in (("torch", torch_model), ("onnx", onnx_model)):
            t0 = time.perf_counter()
            parts[name].append(model.embed(piece))
            seconds[name] += time.perf_counter() - t0
    cosine = (np.vstack(parts["torch"]) * np.vstack(parts["onnx"])).sum(axis=1)

    n = len(sample)
    result: dict[str, Any] = {
        "texts": n,
        "corpus_chunks": len(texts),
        "batch_size": args.batch_size,
        "threads_torch": torch.get_num_threads(),
        "threads_onnx": onnx_model.threads,
        "torch_chunks_per_s": n / seconds["torch"],
        "onnx_int8_chunks_per_s": n / seconds["onnx"],
        "ratio_onnx_to_torch": seconds["torch"] / seconds["onnx"],
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "cosine_p01": float(np.quantile(cosine, 0.01)),
        "torch_load_s": torch_load_s,
        "onnx_load_s": onnx_load_s,
        "onnx_exported_now": exported,
        "onnx_file_mb": onnx_model.onnx_path.stat().st_size / 1e6,
        "model_ids": [torch_model.model_id, onnx_model.model_id],
    }
    rep.table(
        f"Embedding {n:,} SciFact chunks (of {len(texts):,}; seeded sample), "
        f"batch {args.batch_size}, CPU",
        ["backend", "seconds", "chunks/s", "load s", "notes"],
        [
            [
                "torch (fp32)",
                seconds["torch"],
                result["torch_chunks_per_s"],
                torch_load_s,
                f"sentence-transformers, {result['threads_torch']} threads",
            ],
            [
                "onnx-int8",
                seconds["onnx"],
                result["onnx_int8_chunks_per_s"],
                onnx_load_s,
                f"onnxruntime, {onnx_model.threads} threads; "
                + ("exported now" if exported else "cached export")
                + f" ({result['onnx_file_mb']:.1f} MB)",
            ],
            ["ratio", None, result["ratio_onnx_to_torch"], None, "onnx-int8 / torch"],
        ],
    )
    rep.say(
        f"cosine onnx-int8 to torch per chunk: mean {result['cosine_mean']:.4f}, "
        f"1st percentile {result['cosine_p01']:.4f}, min {result['cosine_min']:.4f}"
    )
    rep.final(result)


if __name__ == "__main__":
    main()
