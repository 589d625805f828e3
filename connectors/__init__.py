"""``connectors``: sources -> ``SourceItem`` streams. Imports nothing from ``ragstack``."""

from connectors.base import (
    Acl,
    Connector,
    ConnectorError,
    ScanError,
    SourceItem,
    SourceUnavailableError,
    content_version,
    guess_mime,
)
from connectors.beir import BeirConnector
from connectors.filesystem import FilesystemConnector
from connectors.sql import SqlConnector
from connectors.web import WebConnector

__all__ = [
    "Acl",
    "BeirConnector",
    "Connector",
    "ConnectorError",
    "FilesystemConnector",
    "ScanError",
    "SourceItem",
    "SourceUnavailableError",
    "SqlConnector",
    "WebConnector",
    "content_version",
    "guess_mime",
]
