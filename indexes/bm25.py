"""``Bm25Index``: an incremental, persisted BM25 engine in numpy.

Why our own engine rather than a library (measured on this 2-core machine, see
``evals/bench_indexes.py``):

* rank-bm25 is a scoring reference, not an engine: it scans every document for every
  query term (~10 queries/s at 50k documents). We use it as the oracle in tests.
* bm25s is fast (precomputed scores in a sparse matrix) but rebuild-only: one added
  document changes every idf and the average length, so it re-indexes the corpus.
* tantivy is incremental and persisted, but it fixes Lucene's scorer, cannot be
  restricted to an arbitrary set of permitted ids without building a term-set query
  per request, and its Python round trip is slower than bm25s on small corpora.
* SQLite FTS5 ranks common-word queries slowly (23 q/s) and its bm25() is not tunable.

Design, after Lucene: documents live in immutable **segments** (``indexes.segments``: a
forward index ``doc -> (term, tf)`` and an inverted index ``term -> (doc row, tf)``, numpy
arrays, rows in id order) plus a mutable live-mask per segment. ``add`` writes a new small
segment, ``remove`` clears live bits and decrements document frequencies exactly (so idf
and the average length always reflect exactly the live documents), and small or hole-ridden
segments are merged in the background of later adds. Scores are computed at query time
from term frequencies, so nothing precomputed goes stale; the per-term weight vectors are
cached until the next write, which makes repeated terms as cheap as bm25s' precomputed
matrix. Persistence writes each segment once (``shared/seg-*.npz``) and per save only
the vocabulary and live masks, so saving after adding 1,000 documents to 100,000 is cheap.

Filtered search is exact: a caller's permitted rows are scored with their own statistics
(``_View``), and the top ``k`` among them is exact: ``indexes.bm25_topk`` prunes only rows
that provably cannot reach it, and scores the rest bit for bit as scoring every row would.

Memory is bounded: per-term postings and per-view weights live in caches bounded by bytes
(``postings_cache_bytes``, ``weights_cache_bytes``), least recently used first out.
"""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, Generic, NamedTuple, Self, TypeVar

import numpy as np
import numpy.typing as npt

from indexes.analysis import Analyzer
from indexes.bm25_topk import EMPTY, TermWeights, exact_top_k, scatter_scores
from indexes.errors import CorruptIndexError, DuplicateIdError, InvalidInputError
from indexes.persist import Manifest, read_manifest, write_index_dir
from indexes.scoring import IDF_KINDS, IdfKind, idf_lucene, mean_idf_robertson, tf_part
from indexes.segments import Segment, merge
from indexes.types import (
    IdArray,
    IdFilter,
    LexicalHits,
    check_ids,
    check_top_k,
    top_k_by_score_then_id,
    unique_sorted,
)

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
_VIEWS = 32  # permitted sets whose statistics are kept (least recently used go first)
V = TypeVar("V")


class _Lru(Generic[V]):
    """A thread-safe cache bounded by the bytes of what it holds (oldest use first out)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: V, nbytes: int) -> None:
        with self._lock:
            if nbytes > self.limit or key in self._items:
                return
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.limit:
                _key, (_value, size) = self._items.popitem(last=False)
                self._bytes -= size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes


class _Postings(NamedTuple):
    """One term's live rows (global row numbers, ascending), their tf and their lengths."""

    rows: I32
    tf: F32
    dl: F32

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.tf.nbytes + self.dl.nbytes)


_NO_POSTINGS = _Postings(np.empty(0, np.int32), np.empty(0, np.float32), np.empty(0, np.float32))


class _View:
    """The rows one caller may read (``mask``; ``None``: every live row) and the statistics
    they are scored with: ``n`` rows, mean length ``avgdl``, each term's document frequency
    over them, and the per-term weights that follow (cached by the index, per view)."""

    _serials = itertools.count()

    def __init__(
        self, mask: npt.NDArray[np.bool_] | None, n: int, avgdl: float, index: Bm25Index
    ) -> None:
        self.mask, self.n, self.avgdl, self.index = mask, n, avgdl, index
        self.serial = next(self._serials)
        self._mean_idf: float | None = None

    def _rows(self, gid: int) -> tuple[_Postings, npt.NDArray[np.bool_] | None]:
        postings = self.index._term_postings(gid)
        return postings, (self.mask[postings.rows] if self.mask is not None else None)

    def df(self, gid: int) -> int:
        if gid < 0:
            return 0
        postings, keep = self._rows(gid)
        return int(postings.rows.size if keep is None else keep.sum())

    def idf(self, df: int) -> float:
        if self.index.idf == "lucene":
            return float(idf_lucene(np.array([df], dtype=np.float64), self.n)[0])
        raw = float(np.log((self.n - df + 0.5) / (df + 0.5)))
        return raw if raw >= 0 else 0.25 * self.mean_idf()

    def mean_idf(self) -> float:
        """rank-bm25's average idf over the terms these rows hold (Robertson idf only)."""
        if self._mean_idf is None:
            self._mean_idf = mean_idf_robertson(self.n, self.index._document_frequencies(self.mask))
        return self._mean_idf

    def term(self, gid: int) -> TermWeights:
        """Term ``gid``'s rows here and their BM25 weights (nothing for ``gid < 0``)."""
        if gid < 0:
            return EMPTY
        key = (self.serial, gid)
        hit = self.index._weights.get(key)
        if hit is not None:
            return hit
        postings, keep = self._rows(gid)
        rows, tf, dl = postings.rows, postings.tf, postings.dl
        if keep is not None:
            rows, tf, dl = rows[keep], tf[keep], dl[keep]
        idf = self.idf(int(rows.size))
        k1, b = self.index.k1, self.index.b
        w = idf * tf_part(tf.astype(np.float64), dl.astype(np.float64), self.avgdl, k1, b)
        entry = TermWeights.of(rows, w.astype(np.float32))
        self.index._weights.put(key, entry, entry.nbytes)
        return entry

    def weights(self, gid: int) -> tuple[npt.NDArray[np.integer], F32]:
        """``term``'s ``(rows, weights)``."""
        t = self.term(gid)
        return t.rows, t.w


class Bm25Index:
    """Incremental BM25 (``LexicalIndex``); ``k1``/``b`` default to Lucene's 1.2 / 0.75."""

    backend = "bm25"
    postings_cache_bytes = 128 << 20  # per index: every live row of recently used terms
    weights_cache_bytes = 256 << 20  # per index: recently used terms' weights in each view

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        idf: IdfKind = "lucene",
        max_segments: int = 8,
    ) -> None:
        if idf not in ("lucene", "robertson"):
            raise InvalidInputError(f"idf must be 'lucene' or 'robertson', got {idf!r}")
        self.analyzer = analyzer or Analyzer()
        self.k1 = float(k1)
        self.b = float(b)
        self.idf: IdfKind = idf
        self.max_segments = max(2, max_segments)
        self._vocab: dict[str, int] = {}
        self._df: I64 = np.zeros(1024, dtype=np.int64)
        self._segments: list[Segment] = []
        self._n_live = 0
        self._total_len = 0
        self._layout: tuple[I64, list[int]] | None = None  # ext ids of all rows, segment offsets
        self._postings: _Lru[_Postings] = _Lru(self.postings_cache_bytes)
        self._weights: _Lru[TermWeights] = _Lru(self.weights_cache_bytes)
        self._everyone: _View | None = None  # the statistics of every live row
        self._views: OrderedDict[int, tuple[weakref.ref[IdFilter], _View]] = OrderedDict()
        self._views_lock = threading.Lock()
        self._lookup: tuple[I64, npt.NDArray[np.intp], I32] | None = None

    # -- size and identity ------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_live

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int | np.integer):
            return False
        probe = np.array([int(item)], dtype=np.int64)
        return any(bool(seg.find(probe)[1][0]) for seg in self._segments)

    def ids(self) -> IdArray:
        if not self._segments:
            return np.empty(0, dtype=np.int64)
        return np.sort(np.concatenate([s.ext_ids[s.live] for s in self._segments]), kind="stable")

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocab)

    def terms(self, ids: npt.ArrayLike) -> list[dict[str, int]]:
        """Each id's analysed terms and their frequencies, as the index holds them (``{}``
        for an absent id): what integrity checks compare with the source text."""
        id_arr = check_ids(ids)
        words = list(self._vocab)
        out: list[dict[str, int]] = [{} for _ in range(id_arr.size)]
        for seg in self._segments:
            rows, hit = seg.find(id_arr)
            for i, row in zip(np.flatnonzero(hit).tolist(), rows.tolist(), strict=True):
                gids, tfs = seg.forward(row)
                out[i] = {words[g]: t for g, t in zip(gids.tolist(), tfs.tolist(), strict=True)}
        return out

    def audit(self) -> list[str]:
        """What is inconsistent in the index's own bookkeeping: the document frequencies,
        the live count and the total length against a recount of the live rows, and ids
        live in two places (an empty list when all is well)."""
        problems = []
        df = np.zeros(len(self._vocab), dtype=np.int64)
        n = total = 0
        for seg in self._segments:
            rows = np.flatnonzero(seg.live)
            df += np.bincount(seg.terms_of(rows), minlength=len(self._vocab))
            n += rows.size
            total += int(seg.doc_len[rows].sum())
        if not np.array_equal(df, self._df[: len(self._vocab)]):
            bad = np.flatnonzero(df != self._df[: len(self._vocab)])
            problems.append(f"document frequencies of {bad.size} terms differ from a recount")
        if n != self._n_live or total != self._total_len:
            problems.append(
                f"{self._n_live} live rows of total length {self._total_len} recorded, "
                f"{n} of total length {total} found"
            )
        ids = self.ids()
        if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
            problems.append("an id is live in two rows")
        return problems

    # -- writes -----------------------------------------------------------------------------

    def _present(self, ids: IdArray) -> npt.NDArray[np.bool_]:
        found = np.zeros(ids.shape, dtype=bool)
        for seg in self._segments:
            found |= seg.find(ids)[1]
        return found

    def add(self, ids: npt.ArrayLike, texts: Sequence[str]) -> None:
        id_arr = self._check(ids, texts)
        present = self._present(id_arr)
        if present.any():
            raise DuplicateIdError(
                f"ids already in the index (use upsert): {id_arr[present][:5].tolist()}"
            )
        if id_arr.size:
            self._add_segment(self._segment_for(id_arr, texts))
            self._maybe_merge()

    def upsert(self, ids: npt.ArrayLike, texts: Sequence[str]) -> None:
        id_arr = self._check(ids, texts)
        self.remove(id_arr)
        if id_arr.size:
            self._add_segment(self._segment_for(id_arr, texts))
            self._maybe_merge()

    def remove(self, ids: npt.ArrayLike) -> int:
        id_arr = check_ids(ids)
        dead_terms = []
        removed = 0
        for seg in self._segments:
            rows, _hit = seg.find(id_arr)
            if rows.size == 0:
                continue
            seg.live[rows] = False
            dead_terms.append(seg.terms_of(rows))
            self._total_len -= int(seg.doc_len[rows].sum())
            removed += int(rows.size)
        if removed:
            gids = np.concatenate(dead_terms)
            self._df[: len(self._vocab)] -= np.bincount(gids, minlength=len(self._vocab))
            self._n_live -= removed
            if any(not s.live.any() for s in self._segments):
                self._segments = [s for s in self._segments if s.live.any()]
                self._layout = None
            self._invalidate()
        return removed

    def optimize(self) -> None:
        """Merge every segment into one, dropping removed documents."""
        if len(self._segments) > 1 or any(not s.live.all() for s in self._segments):
            self._replace(self._segments, merge(self._segments))

    @staticmethod
    def _check(ids: npt.ArrayLike, texts: Sequence[str]) -> IdArray:
        id_arr = check_ids(ids)
        if isinstance(texts, str) or len(texts) != id_arr.size:
            raise InvalidInputError("texts must be a sequence of strings, one per id")
        if not all(isinstance(t, str) for t in texts):
            raise InvalidInputError("every text must be a str")
        return id_arr

    def _segment_for(self, ids: IdArray, texts: Sequence[str]) -> Segment:
        vocab = self._vocab
        put = vocab.setdefault
        docs = [self.analyzer(t) for t in texts]
        lens = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        # setdefault(term, len(vocab)) gives a new term the next id: ids follow insertion order.
        gids = np.fromiter(
            (put(t, len(vocab)) for t in chain.from_iterable(docs)),
            dtype=np.int64,
            count=int(lens.sum()),
        )
        width = max(len(vocab), 1)
        rows = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
        keys, tf = np.unique(rows * width + gids, return_counts=True)
        fwd_rows = keys // width
        ptr = np.searchsorted(fwd_rows, np.arange(len(docs) + 1)).astype(np.int64)
        return Segment.from_forward(
            ids, lens.astype(np.int32), ptr, (keys % width).astype(np.int32), tf.astype(np.int32)
        )

    def _grow_df(self) -> None:
        if self._df.size < len(self._vocab):
            grown = np.zeros(max(len(self._vocab), self._df.size * 2), dtype=np.int64)
            grown[: self._df.size] = self._df
            self._df = grown

    def _add_segment(self, seg: Segment) -> None:
        self._grow_df()
        self._df[: len(self._vocab)] += np.bincount(seg.fwd_gids, minlength=len(self._vocab))
        self._n_live += seg.size
        self._total_len += int(seg.doc_len.sum())
        self._segments.append(seg)
        self._layout = None
        self._invalidate()

    def _maybe_merge(self) -> None:
        if len(self._segments) <= self.max_segments:
            return
        by_size = sorted(self._segments, key=Segment.live_count)
        self._replace(by_size[: len(self._segments) - self.max_segments // 2 + 1], None)

    def _replace(self, old: Sequence[Segment], merged: Segment | None) -> None:
        merged = merged or merge(old)
        gone = {id(s) for s in old}
        self._segments = [s for s in self._segments if id(s) not in gone]
        if merged.size:
            self._segments.append(merged)
        self._layout = None
        self._invalidate()

    def _invalidate(self) -> None:
        self._postings.clear()
        self._weights.clear()
        with self._views_lock:
            self._everyone = None
            self._views.clear()
        self._lookup = None

    # -- search -----------------------------------------------------------------------------

    def _rows_layout(self) -> tuple[I64, list[int]]:
        if self._layout is None:
            offsets = [0]
            for s in self._segments:
                offsets.append(offsets[-1] + s.size)
            ext = (
                np.concatenate([s.ext_ids for s in self._segments])
                if self._segments
                else np.empty(0, dtype=np.int64)
            )
            self._layout = (ext, offsets)
        return self._layout

    def _term_postings(self, gid: int) -> _Postings:
        """Every live row holding term ``gid``, with its tf and length (cached until a write)."""
        hit = self._postings.get(gid)
        if hit is not None:
            return hit
        _ext, offsets = self._rows_layout()
        rows_parts, tf_parts, dl_parts = [], [], []
        for seg, offset in zip(self._segments, offsets, strict=False):
            found = seg.postings(gid)
            if found is None:
                continue
            rows, tf = found
            keep = seg.live[rows]
            rows, tf = rows[keep], tf[keep]
            rows_parts.append(rows + np.int32(offset))
            tf_parts.append(tf.astype(np.float32))
            dl_parts.append(seg.doc_len[rows].astype(np.float32))
        if not rows_parts:
            return _NO_POSTINGS
        postings = _Postings(
            np.concatenate(rows_parts), np.concatenate(tf_parts), np.concatenate(dl_parts)
        )
        self._postings.put(gid, postings, postings.nbytes)
        return postings

    def _live_lookup(self) -> tuple[I64, npt.NDArray[np.intp], I32]:
        """``(live ids sorted, their rows, every row's length)``: ids to rows, for views."""
        lookup = self._lookup
        if lookup is None:
            ext, _offsets = self._rows_layout()
            live = (
                np.concatenate([s.live for s in self._segments])
                if self._segments
                else np.zeros(0, dtype=bool)
            )
            rows = np.flatnonzero(live)
            order = np.argsort(ext[rows], kind="stable")  # sorted runs: one per segment
            lengths = (
                np.concatenate([s.doc_len for s in self._segments])
                if self._segments
                else np.zeros(0, dtype=np.int32)
            )
            lookup = self._lookup = (ext[rows][order], rows[order], lengths)
        return lookup

    def _view(self, allow: IdFilter | None) -> _View:
        """The statistics ``allow``'s rows are scored with: N, the mean length and each
        term's document frequency are over those rows alone, so a caller's scores never
        depend on documents outside its permitted set. Cached per ``IdFilter`` object (build
        one per permitted set and reuse it) until the next write."""
        everyone = self._everyone
        if everyone is None:
            total = int(self._total_len)
            avgdl = (total / self._n_live if self._n_live else 1.0) or 1.0
            everyone = self._everyone = _View(None, self._n_live, avgdl, self)
        if allow is None:
            return everyone
        key = id(allow)
        with self._views_lock:
            found = self._views.get(key)
            if found is not None and found[0]() is allow:
                self._views.move_to_end(key)
                return found[1]
        ids, rows_of, lengths = self._live_lookup()
        wanted = allow.ids
        if ids.size and wanted.size:
            pos = np.minimum(np.searchsorted(ids, wanted), ids.size - 1)
            rows = rows_of[pos[ids[pos] == wanted]]
        else:
            rows = np.empty(0, dtype=np.intp)
        if rows.size == self._n_live:
            view = everyone  # every live row is permitted: the same statistics
        else:
            mask = np.zeros(lengths.size, dtype=bool)
            mask[rows] = True
            n = int(rows.size)
            avgdl = (float(lengths[rows].sum(dtype=np.int64)) / n if n else 1.0) or 1.0
            view = _View(mask, n, avgdl, self)
        with self._views_lock:
            self._views[key] = (weakref.ref(allow), view)
            while len(self._views) > _VIEWS:
                self._views.popitem(last=False)
        return view

    def search(self, query: str, top_k: int, allow: IdFilter | None = None) -> LexicalHits:
        """The ``top_k`` best rows ``allow`` permits, scored with the statistics of the
        permitted rows alone (``_view``); ties go to the lower id. A term no permitted row
        holds scores nothing, by the same path as any other (no early exit)."""
        check_top_k(top_k)
        if not isinstance(query, str):
            raise InvalidInputError("query must be a str")
        view = self._view(allow)
        vocab = self._vocab
        ext, offsets = self._rows_layout()
        occurrences = [view.term(vocab.get(term, -1)) for term in self.analyzer(query)]
        if self.idf == "lucene":  # every weight is positive: the pruned exact top k
            scores, ids = exact_top_k(occurrences, offsets[-1], ext, top_k)
            return LexicalHits(scores, ids)
        scores_all = scatter_scores(occurrences, offsets[-1])
        cand = unique_sorted(np.concatenate([np.empty(0, np.intp), *(t.rows for t in occurrences)]))
        best = top_k_by_score_then_id(scores_all[cand], ext[cand], top_k)
        return LexicalHits(scores_all[cand][best], ext[cand[best]])

    def term_stats(self, term: str, allow: IdFilter | None = None) -> tuple[int, float]:
        """``(document frequency, idf)`` of an analysed term, over every live row or over
        ``allow``'s (diagnostics and tests)."""
        view = self._view(allow)
        df = view.df(self._vocab.get(term, -1))
        return (df, view.idf(df)) if df else (0, 0.0)

    def _document_frequencies(self, mask: npt.NDArray[np.bool_] | None) -> npt.NDArray[np.float64]:
        """Each vocabulary term's document frequency over the live rows (``mask``: those of
        them it keeps)."""
        if mask is None:
            return self._df[: len(self._vocab)].astype(np.float64)
        counts = np.zeros(len(self._vocab), dtype=np.float64)
        _ext, offsets = self._rows_layout()
        for seg, offset in zip(self._segments, offsets, strict=False):
            keep = seg.live & mask[offset : offset + seg.size]
            counts += np.bincount(seg.terms_of(np.flatnonzero(keep)), minlength=len(self._vocab))
        return counts

    # -- persistence ------------------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        return {
            "k1": self.k1,
            "b": self.b,
            "idf": self.idf,
            "max_segments": self.max_segments,
            **{f"analyzer_{k}": v for k, v in self.analyzer.config().items()},
        }

    def save(self, path: Path) -> None:
        def build(gen: Path, shared: Path) -> Manifest:
            files = {"vocab": f"{gen.name}/vocab.json", "live": f"{gen.name}/live.npz"}
            for seg in self._segments:
                target = shared / f"seg-{seg.uid}.npz"
                if not target.exists():
                    seg.write(target)
                files[f"segment:{seg.uid}"] = f"{shared.name}/{target.name}"
            (gen / "vocab.json").write_text(json.dumps(list(self._vocab)), encoding="utf-8")
            with (gen / "live.npz").open("wb") as fh:
                np.savez(fh, **{s.uid: s.live for s in self._segments})  # type: ignore[arg-type]
            return Manifest(
                backend=self.backend,
                metric=None,
                dim=None,
                count=len(self),
                params=self._params(),
                files=files,
                extra={"segments": json.dumps([s.uid for s in self._segments])},
            )

        write_index_dir(Path(path), build)

    @classmethod
    def load(cls, path: Path, *, expect: Mapping[str, object] | None = None) -> Self:
        """Open a saved index with the analyzer and parameters it was built with.

        ``expect`` maps parameter names (``k1``, ``analyzer_language``, ...) to required values.
        """
        path = Path(path)
        m = read_manifest(
            path, backend=cls.backend, expect={f"params.{k}": v for k, v in (expect or {}).items()}
        )
        p = m.params
        try:
            language = p["analyzer_language"]
            idf = p["idf"]
            if not (language is None or isinstance(language, str)) or idf not in IDF_KINDS:
                raise ValueError(f"bad analyzer language {language!r} or idf {idf!r}")
            analyzer = Analyzer(
                language=language,
                stopwords=str(p["analyzer_stopwords"]),
                fold_accents=bool(p["analyzer_fold_accents"]),
            )
            index = cls(
                analyzer,
                k1=float(str(p["k1"])),
                b=float(str(p["b"])),
                idf="lucene" if idf == "lucene" else "robertson",
                max_segments=int(str(p["max_segments"])),
            )
            uids: list[str] = json.loads(str(m.extra["segments"]))
            terms = json.loads((path / m.files["vocab"]).read_text(encoding="utf-8"))
            with np.load(path / m.files["live"], allow_pickle=False) as live:
                masks = {uid: live[uid].astype(bool) for uid in uids}
        except (KeyError, ValueError, OSError, TypeError) as exc:
            raise CorruptIndexError(f"cannot read BM25 index at {path}: {exc}") from exc
        index._vocab = {t: i for i, t in enumerate(terms)}
        index._df = np.zeros(max(len(terms), 1024), dtype=np.int64)
        for uid in uids:
            seg = Segment.read(path / m.files[f"segment:{uid}"], uid, masks[uid])
            if seg.fwd_gids.size and int(seg.fwd_gids.max()) >= len(terms):
                raise CorruptIndexError(
                    f"BM25 segment {uid} uses terms missing from the vocabulary"
                )
            index._load_segment(seg)
        if index._n_live != m.count:
            raise CorruptIndexError(
                f"BM25 index at {path}: {index._n_live} live documents, manifest says {m.count}"
            )
        ids = index.ids()
        if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
            raise CorruptIndexError(f"BM25 index at {path}: an id is live in two segments")
        return index

    def _load_segment(self, seg: Segment) -> None:
        self._df[: len(self._vocab)] += np.bincount(
            seg.terms_of(np.flatnonzero(seg.live)), minlength=len(self._vocab)
        )
        self._n_live += seg.live_count()
        self._total_len += int(seg.doc_len[seg.live].sum())
        self._segments.append(seg)
        self._layout = None
        self._invalidate()
