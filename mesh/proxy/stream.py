"""A buffered reader over an asyncio stream that can look ahead without consuming.

The sidecar must sniff the first bytes of a connection (HTTP? TLS?) and, for TLS, read a whole
ClientHello, then still relay those bytes unchanged. ``Inbound`` keeps what it has read in
``buffer`` until the caller consumes it.
"""

from __future__ import annotations

import asyncio

CHUNK = 65536


class HeadTooLarge(ValueError):
    pass


class Inbound:
    def __init__(self, reader: asyncio.StreamReader):
        self.reader = reader
        self.buffer = bytearray()
        self.eof = False

    async def fill(self) -> bool:
        """Read more bytes into the buffer; False at end of stream."""
        if self.eof:
            return False
        data = await self.reader.read(CHUNK)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    async def peek(self, n: int) -> bytes:
        """At least ``n`` buffered bytes (fewer only at end of stream), not consumed."""
        while len(self.buffer) < n and await self.fill():
            pass
        return bytes(self.buffer[:n])

    def take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def read_until(self, separator: bytes, limit: int) -> bytes | None:
        """Consume up to and including ``separator``; None at a clean end of stream.

        Raises HeadTooLarge when ``limit`` bytes pass without the separator and
        asyncio.IncompleteReadError when the stream ends in the middle.
        """
        start = 0
        while True:
            index = self.buffer.find(separator, start, limit + len(separator))
            if index >= 0:
                return self.take(index + len(separator))
            if len(self.buffer) > limit:
                raise HeadTooLarge(f"no {separator!r} within {limit} bytes")
            start = max(0, len(self.buffer) - len(separator) + 1)
            if not await self.fill():
                if not self.buffer:
                    return None
                raise asyncio.IncompleteReadError(bytes(self.buffer), None)

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not await self.fill():
                raise asyncio.IncompleteReadError(bytes(self.buffer), n)
        return self.take(n)

    async def read_some(self, n: int = CHUNK) -> bytes:
        """Whatever is available (buffered first), up to ``n`` bytes; b"" at end of stream."""
        if self.buffer:
            return self.take(n)
        if self.eof:
            return b""
        data = await self.reader.read(n)
        if not data:
            self.eof = True
        return data
