"""The SQL store (SQLite by default; any SQLAlchemy URL)."""

from ragstack.store.store import Store, index_text, make_engine

__all__ = ["Store", "index_text", "make_engine"]
