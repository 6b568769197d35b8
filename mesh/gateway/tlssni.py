"""Server name (SNI) from the first bytes a TLS client sends, for the gateway's connection record."""

from __future__ import annotations

MAX_CLIENT_HELLO = 16384 + 5


class NeedMore(Exception):
    """The ClientHello is not complete yet."""


def looks_like_tls(first_bytes: bytes) -> bool:
    return len(first_bytes) >= 2 and first_bytes[0] == 0x16 and first_bytes[1] == 0x03


def server_names(data: bytes) -> list[str]:
    """Host names in the ClientHello's server_name extension.

    Raises NeedMore while ``data`` is a valid prefix that is too short, ValueError if it is not
    a ClientHello. Handshake messages spread over several records are reassembled.
    """
    handshake = bytearray()
    pos = 0
    while True:
        if len(data) < pos + 5:
            raise NeedMore
        if data[pos] != 0x16:
            raise ValueError("not a TLS handshake record")
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if len(data) < pos + 5 + length:
            raise NeedMore
        handshake += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
            break
    if handshake[0] != 0x01:
        raise ValueError("first handshake message is not a ClientHello")
    return _names_from_hello(bytes(handshake[4 : 4 + int.from_bytes(handshake[1:4], "big")]))


def _names_from_hello(hello: bytes) -> list[str]:
    reader = _Reader(hello)
    reader.skip(2 + 32)  # client_version, random
    reader.skip(reader.uint(1))  # session_id
    reader.skip(reader.uint(2))  # cipher_suites
    reader.skip(reader.uint(1))  # compression_methods
    if reader.done:
        return []
    extensions = _Reader(reader.take(reader.uint(2)))
    while not extensions.done:
        kind = extensions.uint(2)
        body = extensions.take(extensions.uint(2))
        if kind == 0:  # server_name
            names = _Reader(body)
            listing = _Reader(names.take(names.uint(2)))
            found = []
            while not listing.done:
                name_type = listing.uint(1)
                name = listing.take(listing.uint(2))
                if name_type == 0:
                    found.append(name.decode("ascii", "replace").lower().rstrip("."))
            return found
    return []


class _Reader:
    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    @property
    def done(self) -> bool:
        return self._pos >= len(self._data)

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise ValueError("truncated ClientHello")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def skip(self, n: int) -> None:
        self.take(n)

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")
