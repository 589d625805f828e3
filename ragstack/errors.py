"""Errors ragstack raises on purpose. The CLI maps them to exit codes and the API to HTTP
statuses, each in one place; anything else is a bug and is reported without its message.

    RagstackError                   base; ``code`` is a stable machine-readable string
    ├── ConfigError                 settings that cannot work (bad path, unknown backend)
    ├── NotFoundError               a collection, document, job or key that does not exist
    │                               (also what a caller sees for things its ACL hides)
    ├── ConflictError               already exists, or a pinned embedder does not match
    ├── InputError                  a request or document that cannot be processed
    │   ├── UnsupportedDocumentError   a file type we do not parse (audio, images with OCR off)
    │   ├── DocumentTooLargeError      over the configured size limit (bytes, pixels, pages)
    │   └── ParseError                 corrupt, protected, or empty after parsing
    │       ├── OcrUnavailableError       OCR needed, Tesseract or a language pack not installed
    │       └── OcrLanguageMissingError   text in a script no configured OCR language reads
    ├── PermissionDeniedError       the caller's role does not allow the action
    ├── UnauthenticatedError        no API key, or one that is invalid or revoked
    ├── RateLimitedError            a key over its request rate (``retry_after`` seconds)
    ├── UnavailableError            a dependency is down (generator server, database)
    │   └── BusyError               every answer slot of a generator is taken (``retry_after``)
    ├── AbortedError                the caller went away (timed out, disconnected): work stopped
    └── IndexIntegrityError         SQL and an index disagree (``ragstack index check``)
"""

from __future__ import annotations


class RagstackError(Exception):
    """Base of every deliberate ragstack error."""

    code = "error"


class ConfigError(RagstackError):
    code = "config_error"


class NotFoundError(RagstackError):
    code = "not_found"


class ConflictError(RagstackError):
    code = "conflict"


class InputError(RagstackError, ValueError):
    code = "invalid_input"


class UnsupportedDocumentError(InputError):
    code = "unsupported_document"


class DocumentTooLargeError(InputError):
    code = "document_too_large"


class ParseError(InputError):
    code = "parse_error"


class OcrUnavailableError(ParseError):
    code = "ocr_unavailable"


class OcrLanguageMissingError(ParseError):
    code = "ocr_language_missing"


class PermissionDeniedError(RagstackError):
    code = "permission_denied"


class UnauthenticatedError(RagstackError):
    code = "unauthenticated"


class RateLimitedError(RagstackError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(RagstackError):
    code = "unavailable"


class BusyError(UnavailableError):
    code = "busy"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AbortedError(RagstackError):
    code = "aborted"


class IndexIntegrityError(RagstackError):
    code = "index_integrity"
