"""What every part of ``Store`` stands on: its engine and sessions, the ACL filter of
document reads, the generation bump every committed change runs, and a chunk's index text."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, or_, select, update
from sqlmodel import Session, col

from ragstack.domain import PUBLIC
from ragstack.store.engine import make_engine, reading
from ragstack.store.models import AclRow, CollectionRow, DocumentRow, utcnow

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


class StoreBase:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def read(self) -> contextlib.AbstractContextManager[Connection]:
        """``with store.read() as conn``: see ``reading``."""
        return reading(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def readable(q: Any, readers: Sequence[str] | None, tenant: str | None) -> Any:
    """``q`` (over documents) narrowed to what ``readers`` (plus ``public``) may read."""
    if readers is not None:
        who = sorted(set(readers) | {PUBLIC})
        # correlated EXISTS: a page of documents probes the ACL per row and stops at the
        # page's end, instead of first collecting every readable document id
        q = q.where(
            select(col(AclRow.document_id))
            .where(
                col(AclRow.document_id) == col(DocumentRow.id),
                col(AclRow.principal).in_(who),
            )
            .exists()
        )
    if tenant is not None:
        q = q.where(or_(col(DocumentRow.tenant).is_(None), col(DocumentRow.tenant) == tenant))
    return q


def next_generation(collection_id: int, *, indexes: bool) -> Any:
    """The update that bumps a collection's generation (every committed change runs it) and,
    when chunks changed (``indexes``), its index generation too."""
    values: dict[str, Any] = {
        "generation": col(CollectionRow.generation) + 1,
        "updated_at": utcnow(),
    }
    if indexes:
        values["index_generation"] = col(CollectionRow.index_generation) + 1
    return update(CollectionRow).where(col(CollectionRow.id) == collection_id).values(**values)


def index_text(section: str, text: str) -> str:
    """What the lexical index and the embedder see for a chunk: its section path, then its text."""
    return f"{section}\n{text}" if section else text
