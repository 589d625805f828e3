"""Public names for the integer ids of documents and chunks.

Inside, documents and chunks have sequential integer ids (SQL's, never reused). Shown as they
are, the gaps between the ids a caller sees would count the documents it may not see. Every
front door (the API, the MCP server, the pages) shows instead a keyed pseudorandom
permutation of them: ``d_`` or ``c_`` and 16 hex digits, the 64-bit id enciphered by a
four-round Feistel network whose round function is HMAC-SHA256 under a secret every replica
shares (``Store.secret``). Four rounds of a pseudorandom function give a pseudorandom
permutation (Luby-Rackoff), so without the key the names are unlinkable to each other and to
the order of the ids, and with it they map back exactly. Documents and chunks use different
keys, so one kind's name is no name of the other kind.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct

from ragstack.errors import NotFoundError

_ROUNDS = 4
_MASK32 = 0xFFFF_FFFF
_NAME = re.compile(r"^([dc])_([0-9a-f]{16})$")


class _Permutation:
    """A keyed permutation of 64-bit integers (and its inverse)."""

    def __init__(self, key: bytes) -> None:
        self._keys = [hmac.new(key, bytes([r]), hashlib.sha256).digest() for r in range(_ROUNDS)]

    def _f(self, r: int, half: int) -> int:
        digest = hmac.new(self._keys[r], struct.pack(">I", half), hashlib.sha256).digest()
        value: int = struct.unpack(">I", digest[:4])[0]
        return value

    def forward(self, x: int) -> int:
        left, right = x >> 32, x & _MASK32
        for r in range(_ROUNDS):
            left, right = right, left ^ self._f(r, right)
        return (left << 32) | right

    def backward(self, y: int) -> int:
        left, right = y >> 32, y & _MASK32
        for r in reversed(range(_ROUNDS)):
            left, right = right ^ self._f(r, left), left
        return (left << 32) | right


class PublicIds:
    """``document(7) -> "d_3f…"`` and back; unknown or malformed names are ``NotFoundError``
    (a name that decodes to an id the caller may not read is refused by the service, exactly
    as a missing one)."""

    def __init__(self, secret: bytes) -> None:
        self._kinds = {
            "d": _Permutation(hmac.new(secret, b"documents", hashlib.sha256).digest()),
            "c": _Permutation(hmac.new(secret, b"chunks", hashlib.sha256).digest()),
        }

    def _name(self, kind: str, value: int) -> str:
        if not 0 <= value < 2**63:
            raise ValueError(f"not an id: {value}")
        return f"{kind}_{self._kinds[kind].forward(value):016x}"

    def _id(self, kind: str, name: str, what: str) -> int:
        found = _NAME.match(name)
        if found is None or found.group(1) != kind:
            raise NotFoundError(f"no such {what} in this collection")
        value = self._kinds[kind].backward(int(found.group(2), 16))
        if value >= 2**63:
            raise NotFoundError(f"no such {what} in this collection")
        return value

    def document(self, document_id: int) -> str:
        return self._name("d", int(document_id))

    def chunk(self, chunk_id: int) -> str:
        return self._name("c", int(chunk_id))

    def document_id(self, name: str) -> int:
        return self._id("d", name, "document")

    def chunk_id(self, name: str) -> int:
        return self._id("c", name, "chunk")
