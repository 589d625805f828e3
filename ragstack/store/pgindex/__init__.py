"""A collection's dense and lexical indexes inside PostgreSQL (the shared-database backend).

With ``RAGSTACK_DATABASE_URL=postgresql://...`` every API replica and ingest worker reads the
same indexes, so none lives in local files: each collection gets its own tables, created on
first use (they are index data, like the embedded backend's index directories, and so are
outside the Alembic schema):

* ``rs_dense_<id>``: chunk id and its vector (pgvector ``vector(dim)``), with an HNSW index on
  inner product (the vectors are normalised: inner product is cosine) for the ``hnsw``
  backend, IVFFlat for ``ivfpq`` (built once the collection has rows to train its lists on),
  none for ``exact``.
* ``rs_bm25_post_<id>`` (term, chunk id, tf, document length), ``rs_bm25_docs_<id>`` (chunk
  id, length), ``rs_bm25_terms_<id>`` (term, df) and ``rs_bm25_stats_<id>`` (documents, total
  length): BM25 postings analysed in Python
  with the embedded engine's own ``Analyzer`` and scored in SQL with its formula (Lucene idf,
  k1 1.2, b 0.75), so both backends rank alike. Only the query terms' postings are touched
  (PostgreSQL's own ``ts_rank`` is not BM25 and scans every matching row's tsvector).

Every search takes the permitted chunk ids either as an ``IdFilter`` (what the service
passes: its cached set for the caller and the collection's generation) or as an ``SqlAllow``
(the ACL query itself, joined in the statement), so exactly the ``top_k`` best *permitted*
chunks come back. An ``IdFilter`` is looked at once per object (``Permits``): no filter at all
when it holds every row; else the shorter of its ids and the rest's, bound as one parameter:
a short list of permitted ids as an index condition (``id = ANY``), a list of excluded ids
materialised once per statement and hashed, and a long list of dense ids as a bitmap tested
per row (``as_bitmap``). A filtered HNSW scan tests each row it yields (pgvector's iterative scan
continues until it has ``top_k``); a small set is scored exactly instead
(``PgVectorIndex.EXACT_BELOW``). The graph scan and the full scoring statement are built once
per form of set (``form_of``) and run with the values bound.

BM25 statistics are the permitted rows' own, as the embedded engine's: their number, mean
length and each query term's document frequency among them, kept per permitted set (a
``ViewStats``; a committed change arrives as a new set). Scoring is one statement over an
index-only scan of each query term's postings (``(term, id) INCLUDE (tf, len)``, a ``LATERAL``
range per term), in double precision; a query whose common terms cannot lift a row into the
top ``k`` skips their postings when MaxScore proves it (``Scoring.pruned``), else scores
every posting. ``save()`` vacuums and analyses the tables as they grow (``tend``).

Writes run inside the caller's transaction (``add_in`` / ``remove_in``), so SQL and these
indexes commit together.
"""

from __future__ import annotations

from sqlalchemy import Engine

from ragstack.store.pgindex.dense import PgVectorIndex
from ragstack.store.pgindex.lexical import PgBm25Index
from ragstack.store.pgindex.permits import Allow, SqlAllow
from ragstack.store.pgindex.tables import (
    collection_tables,
    dense_table,
    drop_collection_tables,
    drop_dense_table,
    tend,
)

__all__ = [
    "Allow",
    "PgBm25Index",
    "PgVectorIndex",
    "SqlAllow",
    "collection_tables",
    "create_collection_tables",
    "dense_table",
    "drop_collection_tables",
    "drop_dense_table",
    "tend",
]

_CREATE_LOCK = 0x7273_6978  # advisory lock key for creating a collection's tables


def create_collection_tables(engine: Engine, dense: PgVectorIndex, lexical: PgBm25Index) -> None:
    """Create a collection's index tables if missing (concurrent callers wait their turn)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK})")
        dense.create(conn)
        lexical.create(conn)
