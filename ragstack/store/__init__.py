"""The SQL store (SQLite by default; any SQLAlchemy URL)."""

from ragstack.store.base import index_text
from ragstack.store.engine import make_engine
from ragstack.store.store import Store

__all__ = ["Store", "index_text", "make_engine"]
