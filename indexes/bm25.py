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

Design, after Lucene: documents live in immutable **segments** (a forward index
``doc -> (term, tf)`` and an inverted index ``term -> (doc row, tf)``, numpy arrays)
plus a mutable live-mask per segment. ``add`` writes a new small segment, ``remove``
clears live bits and decrements document frequencies exactly (so idf and the average
length always reflect exactly the live documents), and small or hole-ridden segments
are merged in the background of later adds. Scores are computed at query time from
term frequencies, so nothing precomputed goes stale; the per-term weight vectors are
cached until the next write, which makes repeated terms as cheap as bm25s' precomputed
matrix. Persistence writes each segment once (``shared/seg-*.npz``) and per save only
the vocabulary and live masks, so saving after adding 1,000 documents to 100,000 is cheap.

Filtered search is exact: every document matching a query term is scored, and the
permitted-id mask is applied to that full candidate set before the top-k selection.
"""

from __future__ import annotations

import json
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple, Self

import numpy as np
import numpy.typing as npt

from indexes.analysis import Analyzer
from indexes.errors import CorruptIndexError, DuplicateIdError, InvalidInputError
from indexes.persist import Manifest, read_manifest, write_index_dir
from indexes.scoring import IDF_KINDS, IdfKind, idf_lucene, mean_idf_robertson, tf_part
from indexes.types import (
    IdArray,
    IdFilter,
    LexicalHits,
    check_ids,
    check_top_k,
    top_k_by_score_then_id,
)

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
_CACHE_LIMIT = 4_000_000  # cached postings (per cache) before it is dropped
_VIEWS = 32  # permitted sets whose statistics are kept (least recently used go first)


@dataclass
class _Segment:
    uid: str
    ext_ids: I64  # chunk id of each row
    doc_len: I32  # terms per row after analysis
    fwd_ptr: I64  # row r's terms are fwd_gids[fwd_ptr[r]:fwd_ptr[r + 1]]
    fwd_gids: I64
    fwd_tf: I32
    term_gids: I64  # sorted term ids present in the segment
    term_ptr: I64  # term i's postings are post_rows[term_ptr[i]:term_ptr[i + 1]]
    post_rows: I32
    post_tf: I32
    live: npt.NDArray[np.bool_]

    @classmethod
    def from_forward(
        cls, ext_ids: I64, doc_len: I32, fwd_ptr: I64, fwd_gids: I64, fwd_tf: I32
    ) -> _Segment:
        n = ext_ids.size
        rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(fwd_ptr))
        order = np.argsort(fwd_gids, kind="stable")
        gids = fwd_gids[order]
        term_gids, starts = np.unique(gids, return_index=True)
        return cls(
            uid=uuid.uuid4().hex,
            ext_ids=ext_ids,
            doc_len=doc_len,
            fwd_ptr=fwd_ptr,
            fwd_gids=fwd_gids,
            fwd_tf=fwd_tf,
            term_gids=term_gids.astype(np.int64),
            term_ptr=np.append(starts, gids.size).astype(np.int64),
            post_rows=rows[order],
            post_tf=fwd_tf[order],
            live=np.ones(n, dtype=bool),
        )

    @property
    def size(self) -> int:
        return int(self.ext_ids.size)

    def live_count(self) -> int:
        return int(self.live.sum())

    def live_forward(self) -> tuple[I64, I32, I64, I64, I32]:
        """Forward arrays of the live rows only (for merging)."""
        counts = np.diff(self.fwd_ptr)
        keep_post = np.repeat(self.live, counts)
        ptr = np.zeros(int(self.live.sum()) + 1, dtype=np.int64)
        np.cumsum(counts[self.live], out=ptr[1:])
        return (
            self.ext_ids[self.live],
            self.doc_len[self.live],
            ptr,
            self.fwd_gids[keep_post],
            self.fwd_tf[keep_post],
        )

    _ARRAYS = (
        "ext_ids",
        "doc_len",
        "fwd_ptr",
        "fwd_gids",
        "fwd_tf",
        "term_gids",
        "term_ptr",
        "post_rows",
        "post_tf",
    )

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, **{name: getattr(self, name) for name in self._ARRAYS})
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path, uid: str, live: npt.NDArray[np.bool_]) -> _Segment:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in cls._ARRAYS}
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptIndexError(f"cannot read BM25 segment {path}: {exc}") from exc
        if live.shape != arrays["ext_ids"].shape:
            raise CorruptIndexError(f"BM25 segment {path}: live mask does not match its rows")
        return cls(uid=uid, live=live, **arrays)


class _Postings(NamedTuple):
    """One term's live rows (global row numbers), their tf and their lengths."""

    rows: npt.NDArray[np.intp]
    tf: npt.NDArray[np.float32]
    dl: npt.NDArray[np.float32]


class _View:
    """The rows one caller may read (``mask``; ``None``: every live row) and the statistics
    they are scored with: ``n`` rows, mean length ``avgdl``, each term's document frequency
    over them, and the per-term weights that follow (cached)."""

    def __init__(
        self, mask: npt.NDArray[np.bool_] | None, n: int, avgdl: float, index: Bm25Index
    ) -> None:
        self.mask, self.n, self.avgdl, self.index = mask, n, avgdl, index
        self._weights: dict[int, tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]] = {}
        self._cached = 0
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

    def weights(self, gid: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
        """Term ``gid``'s rows here and their BM25 weights (nothing for ``gid < 0``)."""
        hit = self._weights.get(gid)
        if hit is not None:
            return hit
        if gid < 0:
            return np.empty(0, np.intp), np.empty(0, np.float32)
        postings, keep = self._rows(gid)
        rows, tf, dl = postings.rows, postings.tf, postings.dl
        if keep is not None:
            rows, tf, dl = rows[keep], tf[keep], dl[keep]
        idf = self.idf(int(rows.size))
        k1, b = self.index.k1, self.index.b
        w = idf * tf_part(tf.astype(np.float64), dl.astype(np.float64), self.avgdl, k1, b)
        entry = (rows, w.astype(np.float32))
        if self._cached + rows.size > _CACHE_LIMIT:
            self._weights.clear()
            self._cached = 0
        self._weights[gid] = entry
        self._cached += rows.size
        return entry


def _merge(segments: Sequence[_Segment]) -> _Segment:
    parts = [s.live_forward() for s in segments]
    ptrs = []
    base = 0
    for _ids, _len, ptr, _g, _tf in parts:
        ptrs.append(ptr[:-1] + base)
        base += int(ptr[-1])
    ptrs.append(np.array([base], dtype=np.int64))
    return _Segment.from_forward(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate(ptrs),
        np.concatenate([p[3] for p in parts]),
        np.concatenate([p[4] for p in parts]),
    )


class Bm25Index:
    """Incremental BM25 (``LexicalIndex``); ``k1``/``b`` default to Lucene's 1.2 / 0.75."""

    backend = "bm25"

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
        self._segments: list[_Segment] = []
        self._where: dict[int, tuple[_Segment, int]] = {}
        self._n_live = 0
        self._total_len = 0
        self._layout: tuple[I64, list[int]] | None = None  # ext ids of all rows, segment offsets
        self._postings: dict[int, _Postings] = {}  # per term, over the live rows (cached)
        self._cached_postings = 0
        self._everyone: _View | None = None  # the statistics of every live row
        self._views: OrderedDict[int, tuple[weakref.ref[IdFilter], _View]] = OrderedDict()
        self._lookup: tuple[I64, npt.NDArray[np.intp], I32] | None = None

    # -- size and identity ------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_live

    def __contains__(self, item: object) -> bool:
        return isinstance(item, int | np.integer) and int(item) in self._where

    def ids(self) -> IdArray:
        return np.array(sorted(self._where), dtype=np.int64)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocab)

    # -- writes -----------------------------------------------------------------------------

    def add(self, ids: npt.ArrayLike, texts: Sequence[str]) -> None:
        id_arr = self._check(ids, texts)
        dup = [i for i in id_arr.tolist() if i in self._where]
        if dup:
            raise DuplicateIdError(f"ids already in the index (use upsert): {dup[:5]}")
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
        dead_terms = []
        removed = 0
        for i in check_ids(ids).tolist():
            hit = self._where.pop(i, None)
            if hit is None:
                continue
            seg, row = hit
            seg.live[row] = False
            dead_terms.append(seg.fwd_gids[seg.fwd_ptr[row] : seg.fwd_ptr[row + 1]])
            self._total_len -= int(seg.doc_len[row])
            removed += 1
        if removed:
            gids = np.concatenate(dead_terms)
            self._df[: len(self._vocab)] -= np.bincount(gids, minlength=len(self._vocab))
            self._n_live -= removed
            empty = [s for s in self._segments if not s.live.any()]
            if empty:
                self._segments = [s for s in self._segments if s.live.any()]
                self._layout = None
            self._invalidate()
        return removed

    def optimize(self) -> None:
        """Merge every segment into one, dropping removed documents."""
        if len(self._segments) > 1 or any(not s.live.all() for s in self._segments):
            self._replace(self._segments, _merge(self._segments))

    @staticmethod
    def _check(ids: npt.ArrayLike, texts: Sequence[str]) -> IdArray:
        id_arr = check_ids(ids)
        if isinstance(texts, str) or len(texts) != id_arr.size:
            raise InvalidInputError("texts must be a sequence of strings, one per id")
        if not all(isinstance(t, str) for t in texts):
            raise InvalidInputError("every text must be a str")
        return id_arr

    def _segment_for(self, ids: IdArray, texts: Sequence[str]) -> _Segment:
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
        return _Segment.from_forward(
            ids, lens.astype(np.int32), ptr, (keys % width).astype(np.int64), tf.astype(np.int32)
        )

    def _add_segment(self, seg: _Segment) -> None:
        if self._df.size < len(self._vocab):
            grown = np.zeros(max(len(self._vocab), self._df.size * 2), dtype=np.int64)
            grown[: self._df.size] = self._df
            self._df = grown
        self._df[: len(self._vocab)] += np.bincount(seg.fwd_gids, minlength=len(self._vocab))
        self._n_live += seg.size
        self._total_len += int(seg.doc_len.sum())
        for row, i in enumerate(seg.ext_ids.tolist()):
            self._where[i] = (seg, row)
        self._segments.append(seg)
        self._layout = None
        self._invalidate()

    def _maybe_merge(self) -> None:
        if len(self._segments) <= self.max_segments:
            return
        by_size = sorted(self._segments, key=_Segment.live_count)
        self._replace(by_size[: len(self._segments) - self.max_segments // 2 + 1], None)

    def _replace(self, old: Sequence[_Segment], merged: _Segment | None) -> None:
        merged = merged or _merge(old)
        gone = {id(s) for s in old}
        self._segments = [s for s in self._segments if id(s) not in gone]
        if merged.size:
            self._segments.append(merged)
            for row, i in enumerate(merged.ext_ids.tolist()):
                self._where[i] = (merged, row)
        self._layout = None
        self._invalidate()

    def _invalidate(self) -> None:
        self._postings.clear()
        self._cached_postings = 0
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
            pos = int(np.searchsorted(seg.term_gids, gid))
            if pos >= seg.term_gids.size or seg.term_gids[pos] != gid:
                continue
            lo, hi = seg.term_ptr[pos], seg.term_ptr[pos + 1]
            rows = seg.post_rows[lo:hi]
            keep = seg.live[rows]
            rows = rows[keep]
            rows_parts.append(rows.astype(np.intp) + offset)
            tf_parts.append(seg.post_tf[lo:hi][keep].astype(np.float32))
            dl_parts.append(seg.doc_len[rows].astype(np.float32))
        found = (
            _Postings(
                np.concatenate(rows_parts), np.concatenate(tf_parts), np.concatenate(dl_parts)
            )
            if rows_parts
            else _Postings(np.empty(0, np.intp), np.empty(0, np.float32), np.empty(0, np.float32))
        )
        if self._cached_postings + found.rows.size > _CACHE_LIMIT:
            self._postings.clear()
            self._cached_postings = 0
        self._postings[gid] = found
        self._cached_postings += found.rows.size
        return found

    def _live_lookup(self) -> tuple[I64, npt.NDArray[np.intp], I32]:
        """``(live ids sorted, their rows, every row's length)``: ids to rows, for views."""
        if self._lookup is None:
            ext, _offsets = self._rows_layout()
            live = (
                np.concatenate([s.live for s in self._segments])
                if self._segments
                else np.zeros(0, dtype=bool)
            )
            rows = np.flatnonzero(live)
            order = np.argsort(ext[rows], kind="stable")  # radix sort: ids come mostly in order
            lengths = (
                np.concatenate([s.doc_len for s in self._segments])
                if self._segments
                else np.zeros(0, dtype=np.int32)
            )
            self._lookup = (ext[rows][order], rows[order], lengths)
        return self._lookup

    def _view(self, allow: IdFilter | None) -> _View:
        """The statistics ``allow``'s rows are scored with: N, the mean length and each
        term's document frequency are over those rows alone, so a caller's scores never
        depend on documents outside its permitted set. Cached per ``IdFilter`` object (build
        one per permitted set and reuse it) until the next write."""
        if self._everyone is None:
            total = int(self._total_len)
            avgdl = (total / self._n_live if self._n_live else 1.0) or 1.0
            self._everyone = _View(None, self._n_live, avgdl, self)
        if allow is None:
            return self._everyone
        key = id(allow)
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
            view = self._everyone  # every live row is permitted: the same statistics
        else:
            mask = np.zeros(lengths.size, dtype=bool)
            mask[rows] = True
            n = int(rows.size)
            avgdl = (float(lengths[rows].sum(dtype=np.int64)) / n if n else 1.0) or 1.0
            view = _View(mask, n, avgdl, self)
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
        scores = np.zeros(offsets[-1], dtype=np.float32)
        touched = [np.empty(0, np.intp)]
        for term in self.analyzer(query):
            rows, w = view.weights(vocab.get(term, -1))
            scores[rows] += w
            touched.append(rows)
        if self.idf == "lucene":  # every weight is positive: a matched row scores > 0
            cand = np.flatnonzero(scores)
        else:
            cand = np.unique(np.concatenate(touched))
        best = top_k_by_score_then_id(scores[cand], ext[cand], top_k)
        return LexicalHits(scores[cand][best], ext[cand[best]])

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
            gids = seg.fwd_gids[np.repeat(keep, np.diff(seg.fwd_ptr))]
            counts += np.bincount(gids, minlength=len(self._vocab))
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
            seg = _Segment.read(path / m.files[f"segment:{uid}"], uid, masks[uid])
            if seg.fwd_gids.size and int(seg.fwd_gids.max()) >= len(terms):
                raise CorruptIndexError(
                    f"BM25 segment {uid} uses terms missing from the vocabulary"
                )
            index._load_segment(seg)
        if index._n_live != m.count:
            raise CorruptIndexError(
                f"BM25 index at {path}: {index._n_live} live documents, manifest says {m.count}"
            )
        return index

    def _load_segment(self, seg: _Segment) -> None:
        counts = np.diff(seg.fwd_ptr)
        live_gids = seg.fwd_gids[np.repeat(seg.live, counts)]
        self._df[: len(self._vocab)] += np.bincount(live_gids, minlength=len(self._vocab))
        self._n_live += seg.live_count()
        self._total_len += int(seg.doc_len[seg.live].sum())
        for row in np.flatnonzero(seg.live).tolist():
            self._where[int(seg.ext_ids[row])] = (seg, row)
        self._segments.append(seg)
        self._layout = None
        self._invalidate()
