"""Files an API caller uploaded: where they wait, what they become, when they go.

An upload is staged in a folder of its own job (``<data dir>/uploads/jobs/<job id>/``), which
no ACL sidecar lookup ever reads: an upload's ACL is only what its uploader asked for. Its
document is ``upload:///<file name>`` in the uploader's namespace, so a re-upload replaces the
uploader's own earlier one and never another caller's document. Once the job has ended the
staged bytes are deleted (they are the unredacted original), unless the operator keeps
originals (``RAGSTACK_KEEP_UPLOADS``): then they move to
``<data dir>/uploads/kept/<collection id>/<namespace digest>/<file name>`` and leave with their
document or collection.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from connectors import ScanError, SourceItem, content_version, guess_mime
from connectors.base import InMemory

SCHEME = "upload:///"
SIDECAR_SUFFIX = ".acl.json"


def uploads_root(data_dir: Path) -> Path:
    return data_dir / "uploads"


def staging_dir(data_dir: Path, job_id: str) -> Path:
    return uploads_root(data_dir) / "jobs" / job_id


def kept_dir(data_dir: Path, collection_id: int) -> Path:
    return uploads_root(data_dir) / "kept" / str(int(collection_id))


def kept_path(data_dir: Path, collection_id: int, namespace: str, uri: str) -> Path | None:
    """Where a kept original of the uploaded document ``uri`` lives (``None``: not an
    upload)."""
    if not uri.startswith(SCHEME):
        return None
    name = uri[len(SCHEME) :]
    if not name or "/" in name or name.startswith("."):
        return None
    return kept_dir(data_dir, collection_id) / namespace_digest(namespace) / name


def uri_for(name: str) -> str:
    return SCHEME + name


def upload_items(
    folder: Path, names: Sequence[str], max_bytes: int
) -> Iterator[SourceItem | ScanError]:
    """The staged files as source items: no ACL (the run's ACL applies), content versions."""
    for name in names:
        path = folder / name
        uri = uri_for(name)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                yield ScanError(
                    uri, "too_large", f"{size:,} bytes is over the {max_bytes:,}-byte limit"
                )
                continue
            data = path.read_bytes()
        except OSError:
            yield ScanError(uri, "unreadable", "the uploaded file could not be read back")
            continue
        yield SourceItem(
            source="upload",
            uri=uri,
            version=content_version(data),
            title=Path(name).stem,
            mime=guess_mime(name),
            reader=InMemory(data),
            metadata={"filename": name},
            acl=None,
            size=len(data),
        )


def finish(staged: Path, keep_in: Path | None) -> None:
    """After the job: move the staged files under ``keep_in`` (kept originals), or delete
    them; the staging folder goes either way."""
    if keep_in is not None and staged.is_dir():
        keep_in.mkdir(parents=True, exist_ok=True)
        for f in staged.iterdir():
            if f.is_file() and not f.name.startswith("."):
                f.replace(keep_in / f.name)
    shutil.rmtree(staged, ignore_errors=True)


def namespace_digest(namespace: str) -> str:
    return hashlib.sha256(namespace.encode()).hexdigest()[:16]
