"""TLS ClientHello reading and SNI extraction (RFC 8446 4.1.2, RFC 6066 3).

The ClientHello may span several TLS records and several TCP segments. It is read without
being consumed, so the sidecar can relay the exact bytes upstream afterwards.
"""

from __future__ import annotations

from mesh.proxy.stream import Channel

MAX_HELLO = 64 * 1024
HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
SERVER_NAME = 0x0000


class NotClientHello(ValueError):
    pass


def looks_like_tls(first: bytes) -> bool:
    return len(first) >= 2 and first[0] == HANDSHAKE and first[1] == 0x03


class NeedMore(NotClientHello):
    """What arrived is a valid beginning of a ClientHello: more bytes are needed."""


class HelloReader:
    """Reassembles a ClientHello from the first bytes of a connection as they arrive, looking at
    each byte once: re-reading from the first record on every call would cost the square of the
    record count, and a client sending 1-byte records would hold the event loop for minutes."""

    def __init__(self) -> None:
        self.offset = 0  # where the next record starts in the connection's bytes
        self.handshake = bytearray()  # the record bodies so far

    def read(self, data: bytes | bytearray) -> bytes:
        """The ClientHello handshake body (after its 4-byte header), from ``data``: the first bytes
        the client sent, those of the previous call and maybe more. Raises NeedMore while ``data``
        is too short, NotClientHello when it is not a ClientHello (or one over MAX_HELLO bytes)."""
        handshake = self.handshake
        while self.offset <= MAX_HELLO:
            offset = self.offset
            if len(data) < offset + 5:
                raise NeedMore
            if data[offset] != HANDSHAKE:
                raise NotClientHello(f"TLS record type {data[offset]} is not a handshake")
            length = int.from_bytes(data[offset + 3 : offset + 5], "big")
            if len(data) < offset + 5 + length:
                raise NeedMore
            handshake += data[offset + 5 : offset + 5 + length]
            self.offset = offset + 5 + length
            if len(handshake) >= 4:
                if handshake[0] != CLIENT_HELLO:
                    raise NotClientHello(f"first handshake message is type {handshake[0]}, not ClientHello")
                need = 4 + int.from_bytes(handshake[1:4], "big")
                if need > MAX_HELLO:
                    raise NotClientHello("ClientHello too large")
                if len(handshake) >= need:
                    return bytes(handshake[4:need])
        raise NotClientHello("ClientHello too large")


def client_hello(data: bytes) -> bytes:
    """The ClientHello handshake body from the first bytes a client sent (``HelloReader.read``)."""
    return HelloReader().read(data)


async def read_client_hello(src: Channel) -> bytes:
    """The ClientHello handshake body, read from ``src`` and left in ``src.buffer``."""
    reader = HelloReader()
    while True:
        try:
            return reader.read(src.buffer)
        except NeedMore:
            if not await src.fill():
                raise NotClientHello("connection ended inside the ClientHello") from None


class _Cursor:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise NotClientHello("truncated ClientHello")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.number(length_bytes))


def server_name(hello: bytes) -> str | None:
    """The host_name from the server_name extension, or None when there is none.

    A ClientHello with two server_name extensions or two host_names is refused (RFC 6066 forbids
    both): we and the server could pick different names, and only one of them was checked.
    """
    cur = _Cursor(hello)
    cur.take(2 + 32)  # legacy_version, random
    cur.vector(1)  # legacy_session_id
    cur.vector(2)  # cipher_suites
    cur.vector(1)  # legacy_compression_methods
    if cur.pos == len(hello):
        return None
    extensions = _Cursor(cur.vector(2))
    found: str | None = None
    seen = False
    while extensions.pos < len(extensions.data):
        kind = extensions.number(2)
        body = extensions.vector(2)
        if kind != SERVER_NAME:
            continue
        if seen:
            raise NotClientHello("more than one server_name extension")
        seen = True
        names = _Cursor(_Cursor(body).vector(2))
        while names.pos < len(names.data):
            name_type = names.number(1)
            name = names.vector(2)
            if name_type != 0:
                continue
            if found is not None:
                raise NotClientHello("more than one SNI host_name")
            try:
                found = name.decode("ascii")
            except UnicodeDecodeError:
                raise NotClientHello("SNI host_name is not ASCII") from None
    return found
