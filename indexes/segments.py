"""Immutable BM25 segments: a forward and an inverted index over a batch of documents.

A segment's rows are sorted by the caller's id, so an id is found in it by binary search (no
id-to-row dictionary: a million of those cost ~150 MB of Python objects). Term ids are int32
(a vocabulary is far below 2**31 terms) and so are row numbers and term frequencies; per
posting a segment holds 16 bytes (forward term and tf, inverted row and tf).

Only the live mask ever changes (``Bm25Index.remove`` clears bits); merging writes a new
segment of the live rows of old ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from indexes.errors import CorruptIndexError

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
Rows = npt.NDArray[np.intp]


def ragged_take(ptr: I64, rows: npt.NDArray[np.integer]) -> tuple[I64, Rows]:
    """For ragged rows ``r`` spanning ``[ptr[r], ptr[r + 1])``: the new pointer array and the
    flat positions of ``rows``' entries, in the order of ``rows``."""
    counts = (ptr[1:] - ptr[:-1])[rows]
    new_ptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(counts, out=new_ptr[1:])
    total = int(new_ptr[-1])
    # position j of the output takes flat entry start[row of j] + (j - new_ptr[row of j])
    shift = np.repeat(ptr[:-1][rows] - new_ptr[:-1], counts)
    positions: Rows = (np.arange(total, dtype=np.int64) + shift).astype(np.intp, copy=False)
    return new_ptr, positions


@dataclass
class Segment:
    uid: str
    ext_ids: I64  # chunk id of each row, ascending
    doc_len: I32  # terms per row after analysis
    fwd_ptr: I64  # row r's terms are fwd_gids[fwd_ptr[r]:fwd_ptr[r + 1]]
    fwd_gids: I32
    fwd_tf: I32
    term_gids: I32  # sorted term ids present in the segment
    term_ptr: I64  # term i's postings are post_rows[term_ptr[i]:term_ptr[i + 1]]
    post_rows: I32  # ascending within a term
    post_tf: I32
    live: npt.NDArray[np.bool_]

    @classmethod
    def from_forward(
        cls, ext_ids: I64, doc_len: I32, fwd_ptr: I64, fwd_gids: I32, fwd_tf: I32
    ) -> Segment:
        """A segment of these rows (re-ordered by id if they are not)."""
        if ext_ids.size > 1 and not (ext_ids[1:] > ext_ids[:-1]).all():
            order = np.argsort(ext_ids, kind="stable")
            fwd_ptr, flat = ragged_take(fwd_ptr, order)
            ext_ids, doc_len = ext_ids[order], doc_len[order]
            fwd_gids, fwd_tf = fwd_gids[flat], fwd_tf[flat]
        n = ext_ids.size
        rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(fwd_ptr))
        order = np.argsort(fwd_gids, kind="stable")  # rows stay ascending within a term
        gids = fwd_gids[order]
        term_gids, starts = np.unique(gids, return_index=True)
        return cls(
            uid=uuid.uuid4().hex,
            ext_ids=ext_ids.astype(np.int64, copy=False),
            doc_len=doc_len.astype(np.int32, copy=False),
            fwd_ptr=fwd_ptr.astype(np.int64, copy=False),
            fwd_gids=fwd_gids.astype(np.int32, copy=False),
            fwd_tf=fwd_tf.astype(np.int32, copy=False),
            term_gids=term_gids.astype(np.int32),
            term_ptr=np.append(starts, gids.size).astype(np.int64),
            post_rows=rows[order],
            post_tf=fwd_tf[order].astype(np.int32, copy=False),
            live=np.ones(n, dtype=bool),
        )

    @property
    def size(self) -> int:
        return int(self.ext_ids.size)

    def live_count(self) -> int:
        return int(self.live.sum())

    def find(self, ids: I64) -> tuple[Rows, npt.NDArray[np.bool_]]:
        """Rows of the live ``ids`` here, and which of ``ids`` those are."""
        if self.size == 0 or ids.size == 0:
            return np.empty(0, dtype=np.intp), np.zeros(ids.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(self.ext_ids, ids), self.size - 1)
        hit = self.ext_ids[pos] == ids
        hit[hit] = self.live[pos[hit]]
        return pos[hit].astype(np.intp, copy=False), hit

    def terms_of(self, rows: Rows) -> I32:
        """The term ids of ``rows`` (each row's distinct terms, concatenated)."""
        _ptr, flat = ragged_take(self.fwd_ptr, rows)
        out: I32 = self.fwd_gids[flat]
        return out

    def forward(self, row: int) -> tuple[I32, I32]:
        """Row ``row``'s ``(term ids, tfs)``."""
        lo, hi = int(self.fwd_ptr[row]), int(self.fwd_ptr[row + 1])
        return self.fwd_gids[lo:hi], self.fwd_tf[lo:hi]

    def live_forward(self) -> tuple[I64, I32, I64, I32, I32]:
        """Forward arrays of the live rows only (for merging)."""
        rows = np.flatnonzero(self.live)
        ptr, flat = ragged_take(self.fwd_ptr, rows)
        return self.ext_ids[rows], self.doc_len[rows], ptr, self.fwd_gids[flat], self.fwd_tf[flat]

    def postings(self, gid: int) -> tuple[I32, I32] | None:
        """Term ``gid``'s ``(rows, tfs)`` here, dead rows included; ``None`` if absent."""
        pos = int(np.searchsorted(self.term_gids, gid))
        if pos >= self.term_gids.size or self.term_gids[pos] != gid:
            return None
        lo, hi = int(self.term_ptr[pos]), int(self.term_ptr[pos + 1])
        return self.post_rows[lo:hi], self.post_tf[lo:hi]

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
    def read(cls, path: Path, uid: str, live: npt.NDArray[np.bool_]) -> Segment:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in cls._ARRAYS}
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptIndexError(f"cannot read BM25 segment {path}: {exc}") from exc
        if live.shape != arrays["ext_ids"].shape:
            raise CorruptIndexError(f"BM25 segment {path}: live mask does not match its rows")
        ext = arrays["ext_ids"]
        if ext.size > 1 and not (ext[1:] > ext[:-1]).all():
            # written before segments were kept in id order (issue 17): re-order it once
            fresh = cls.from_forward(
                ext, arrays["doc_len"], arrays["fwd_ptr"], arrays["fwd_gids"], arrays["fwd_tf"]
            )
            fresh.uid = uid
            fresh.live = live[np.argsort(ext, kind="stable")]
            return fresh
        for name in ("fwd_gids", "fwd_tf", "term_gids", "post_tf", "doc_len"):
            arrays[name] = arrays[name].astype(np.int32, copy=False)  # older files: int64
        return cls(uid=uid, live=live, **arrays)


def merge(segments: Sequence[Segment]) -> Segment:
    """One segment holding the live rows of ``segments``."""
    parts = [s.live_forward() for s in segments]
    ptrs = []
    base = 0
    for _ids, _len, ptr, _g, _tf in parts:
        ptrs.append(ptr[:-1] + base)
        base += int(ptr[-1])
    ptrs.append(np.array([base], dtype=np.int64))
    return Segment.from_forward(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate(ptrs),
        np.concatenate([p[3] for p in parts]),
        np.concatenate([p[4] for p in parts]),
    )
