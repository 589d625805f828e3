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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from indexes.analysis import Analyzer
from indexes.errors import CorruptIndexError, DuplicateIdError, InvalidInputError
from indexes.persist import Manifest, read_manifest, write_index_dir
from indexes.scoring import IDF_KINDS, IdfKind, idf_lucene, mean_idf_robertson, tf_part
from indexes.types import IdArray, IdFilter, LexicalHits, check_ids, check_top_k, top_k_desc

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
_CACHE_LIMIT = 4_000_000  # cached (row, weight) pairs before the weight cache is dropped


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
        self._weights: dict[int, tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]] = {}
        self._cached_postings = 0
        self._mean_idf: float | None = None

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
        self._weights.clear()
        self._cached_postings = 0
        self._mean_idf = None

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

    def _idf(self, gid: int) -> float:
        df = np.array([self._df[gid]], dtype=np.float64)
        if self.idf == "lucene":
            return float(idf_lucene(df, self._n_live)[0])
        if self._mean_idf is None:
            all_df = self._df[: len(self._vocab)].astype(np.float64)
            self._mean_idf = mean_idf_robertson(self._n_live, all_df)
        raw = float(np.log((self._n_live - df[0] + 0.5) / (df[0] + 0.5)))
        return raw if raw >= 0 else 0.25 * self._mean_idf

    def _term_weights(self, gid: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
        hit = self._weights.get(gid)
        if hit is not None:
            return hit
        _ext, offsets = self._rows_layout()
        idf = self._idf(gid)
        avgdl = self._total_len / self._n_live if self._n_live else 1.0
        avgdl = avgdl or 1.0
        rows_parts, w_parts = [], []
        for seg, offset in zip(self._segments, offsets, strict=False):
            pos = int(np.searchsorted(seg.term_gids, gid))
            if pos >= seg.term_gids.size or seg.term_gids[pos] != gid:
                continue
            lo, hi = seg.term_ptr[pos], seg.term_ptr[pos + 1]
            rows = seg.post_rows[lo:hi]
            keep = seg.live[rows]
            rows = rows[keep]
            tf = seg.post_tf[lo:hi][keep].astype(np.float64)
            dl = seg.doc_len[rows].astype(np.float64)
            rows_parts.append(rows.astype(np.intp) + offset)
            w_parts.append((idf * tf_part(tf, dl, avgdl, self.k1, self.b)).astype(np.float32))
        entry = (
            (np.concatenate(rows_parts), np.concatenate(w_parts))
            if rows_parts
            else (np.empty(0, np.intp), np.empty(0, np.float32))
        )
        if self._cached_postings + entry[0].size > _CACHE_LIMIT:
            self._weights.clear()
            self._cached_postings = 0
        self._weights[gid] = entry
        self._cached_postings += entry[0].size
        return entry

    def search(self, query: str, top_k: int, allow: IdFilter | None = None) -> LexicalHits:
        check_top_k(top_k)
        if not isinstance(query, str):
            raise InvalidInputError("query must be a str")
        vocab = self._vocab
        gids = [g for g in (vocab.get(t) for t in self.analyzer(query)) if g is not None]
        if not gids or self._n_live == 0:
            return LexicalHits(np.empty(0, np.float32), np.empty(0, np.int64))
        ext, offsets = self._rows_layout()
        scores = np.zeros(offsets[-1], dtype=np.float32)
        touched = []
        for g in gids:
            rows, w = self._term_weights(g)
            scores[rows] += w
            touched.append(rows)
        if self.idf == "lucene":  # every weight is positive: a matched row scores > 0
            cand = np.flatnonzero(scores)
        else:
            cand = np.unique(np.concatenate(touched))
        if allow is not None:
            cand = cand[allow.mask(ext[cand])]
        cand_scores = scores[cand]
        best = top_k_desc(cand_scores, top_k)
        return LexicalHits(cand_scores[best], ext[cand[best]])

    def term_stats(self, term: str) -> tuple[int, float]:
        """``(document frequency, idf)`` of an analysed term (diagnostics and tests)."""
        gid = self._vocab.get(term)
        if gid is None or self._df[gid] == 0:  # unknown, or every document using it removed
            return (0, 0.0)
        return (int(self._df[gid]), self._idf(gid))

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
