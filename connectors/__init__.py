"""``connectors``: sources -> streams of ``SourceItem`` (or ``ScanError``). Imports nothing
from ``ragstack``.

Every connector has a ``name`` and a ``scan()`` yielding one ``SourceItem | ScanError`` per
item currently in its source; see ``connectors.base`` for the item, the error kinds and the
exception tree.
"""

from connectors.base import (
    Acl,
    AclError,
    ConfigError,
    Connector,
    ConnectorError,
    ContentChangedError,
    ErrorKind,
    ItemReadError,
    MetaValue,
    ScanError,
    ScanResult,
    SourceItem,
    SourceUnavailableError,
    content_version,
    guess_mime,
    partition,
)
from connectors.beir import BeirConnector
from connectors.fetch import FetchFailedError, FetchPolicy, FetchRefusedError
from connectors.filesystem import FilesystemConnector
from connectors.sql import SqlConnector
from connectors.web import WebConnector

__all__ = [
    "Acl",
    "AclError",
    "BeirConnector",
    "ConfigError",
    "Connector",
    "ConnectorError",
    "ContentChangedError",
    "ErrorKind",
    "FetchFailedError",
    "FetchPolicy",
    "FetchRefusedError",
    "FilesystemConnector",
    "ItemReadError",
    "MetaValue",
    "ScanError",
    "ScanResult",
    "SourceItem",
    "SourceUnavailableError",
    "SqlConnector",
    "WebConnector",
    "content_version",
    "guess_mime",
    "partition",
]
