"""``ragstack ingest --executor ray``: parsing, redaction, chunking and embedding on Ray Data.

The driver (the ``ragstack ingest`` process) still owns everything that makes ingest
incremental and crash-safe: it scans the sources, skips unchanged documents, holds the
collection's writer lock and commits each batch through the same store (SQL and indexes),
exactly as in-process ingest does. What fans out is the per-document work: the driver reads
each changed item's bytes (so workers need no access to the sources) and hands windows of
them to a Ray Data ``map_batches`` stage of actors; each actor builds the same parser,
redactor, chunker and embedder as the driver once, prepares its documents and embeds their
chunks in one call. Results stream back in completion order and are committed as they come.

``ray.init()`` starts a local Ray when no address is given (the tests), or joins an existing
cluster (``--ray-address``). Usage statistics are off (``RAY_USAGE_STATS_ENABLED=0``).
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from ragstack.config import Settings
from ragstack.domain import CollectionInfo, MetaValue
from ragstack.extras import require
from ragstack.ingest.items import IngestOptions, ItemError, ItemLike
from ragstack.ingest.prepare import Prepared, Preparer, problem, read_within


@dataclass(frozen=True)
class _Acl:
    tenant: str | None
    principals: frozenset[str]


@dataclass(frozen=True)
class ShippedItem:
    """A source item with its bytes already read: what travels to a worker."""

    source: str
    uri: str
    version: str
    title: str
    mime: str
    metadata: Mapping[str, MetaValue]
    acl: _Acl | None
    size: int | None
    data: bytes

    def read(self) -> bytes:
        return self.data


def ship(item: ItemLike, max_bytes: int) -> ShippedItem:
    """Read ``item`` here, within the size limit (an oversized item never travels)."""
    acl = item.acl
    data = read_within(item, max_bytes)
    return ShippedItem(
        item.source, item.uri, item.version, item.title, item.mime, dict(item.metadata),
        _Acl(acl.tenant, frozenset(acl.principals)) if acl is not None else None,
        item.size, data,
    )  # fmt: skip


class PrepareAndEmbed:
    """A Ray Data actor: the driver's ingest parts, built once per worker."""

    def __init__(
        self, settings_json: str, info: CollectionInfo, salt: str, options: IngestOptions
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from ragstack.app import ingest_parts, redactor_for

        settings = Settings.model_validate_json(settings_json)
        self.embedder, chunker, parser = ingest_parts(settings, info.embedder_id)
        parser = parser.with_ocr_mode(options.ocr_mode)
        self.preparer = Preparer(parser, redactor_for(info, salt), chunker, options)

    def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        results: list[Prepared | ItemError] = []
        for blob, is_update in zip(batch["item"], batch["is_update"], strict=True):
            results.append(self.preparer.prepare_safely(pickle.loads(blob), bool(is_update)))
        ready = [r for r in results if isinstance(r, Prepared)]
        texts = [t for r in ready for t in r.embed_texts]
        if texts:
            vectors = self.embedder.embed(texts)
            at = 0
            for r in ready:
                r.vectors = list(vectors[at : at + len(r.embed_texts)])
                at += len(r.embed_texts)
        out = np.empty(len(results), dtype=object)
        out[:] = [pickle.dumps(r) for r in results]
        return {"result": out}


class RayExecutor:
    """An ``Executor`` for ``Ingestor``: windows of items through Ray Data actors."""

    def __init__(
        self,
        settings: Settings,
        info: CollectionInfo,
        salt: str,
        options: IngestOptions,
        *,
        address: str | None = None,
        workers: int | None = None,
        window: int = 1024,
        batch_size: int = 16,
    ) -> None:
        require("ray", "--executor ray", "ray")
        self.settings_json = settings.model_dump_json()
        self.info, self.salt, self.options = info, salt, options
        self.address = address
        self.workers = workers
        self.window = window
        self.batch_size = batch_size
        # here, not on the ingest's producer thread: a local Ray's processes are tied to the
        # thread that starts them (they die with it)
        self.concurrency = self._start()

    def _start(self) -> int:
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
        if not ray.is_initialized():
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                ignore_reinit_error=True,
            )
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        return self.workers or max(1, cpus)

    def __call__(
        self, preparer: Preparer, todo: Iterable[tuple[ItemLike, bool]]
    ) -> Iterator[Prepared | ItemError]:
        import ray.data

        workers = self.concurrency
        stream = iter(todo)
        while window := list(islice(stream, self.window)):
            rows = []
            for item, is_update in window:
                try:
                    shipped = ship(item, self.options.max_file_bytes)
                except Exception as exc:  # one file's failure must not stop the run
                    yield problem(item.uri, exc)
                    continue
                rows.append({"item": pickle.dumps(shipped), "is_update": is_update})
            if not rows:
                continue
            ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // self.batch_size))
            prepared = ds.map_batches(
                PrepareAndEmbed,
                fn_constructor_args=(self.settings_json, self.info, self.salt, self.options),
                batch_size=self.batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=1,
            )
            with warnings.catch_warnings():  # "fewer inputs than actors" on a small window
                warnings.simplefilter("ignore", UserWarning)
                for row in prepared.iter_rows():
                    yield pickle.loads(row["result"])
