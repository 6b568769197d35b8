"""One TCP connection as an asyncio Protocol: a read buffer that can look ahead without consuming,
and a writer.

The sidecar must sniff the first bytes of a connection (HTTP? TLS?) and, for TLS, read a whole
ClientHello, then still relay those bytes unchanged: ``Channel`` keeps what it has read in
``buffer`` until the caller consumes it. It replaces asyncio's StreamReader/StreamWriter pair on
the hot path (one object, one future per wait, no per-read allocation beyond the bytes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

CHUNK = 65536
HIGH_WATER = 4 * CHUNK  # buffered and unconsumed: stop reading from the socket
LOW_WATER = CHUNK


class HeadTooLarge(ValueError):
    pass


class Channel(asyncio.Protocol):
    __slots__ = (
        "buffer", "eof", "transport", "_waiter", "_drained", "_paused", "_error", "_closed", "_on_open",
        "_splice", "_peer", "_observe", "_blocked", "_driver",
    )  # fmt: skip

    def __init__(self, on_open: Any = None):
        self.buffer = bytearray()
        self.eof = False
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future | None = None
        self._drained: asyncio.Future | None = None  # while the transport's write buffer is full
        self._paused = False  # reading paused (our buffer is full)
        self._error: BaseException | None = None  # to raise in the next wait (a timeout)
        self._closed = False
        self._on_open = on_open
        self._splice: Splice | None = None  # set once this connection's bytes go straight to _peer
        self._peer: Channel | None = None
        self._observe: Callable[[bytes], None] | None = None
        self._blocked: Channel | None = None  # a peer paused until we can write again
        # While set, what arrives goes to this callback instead of the buffer (b"": the stream ended).
        self._driver: Callable[[bytes], None] | None = None

    # ---------------------------------------------------------------- protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self._on_open is not None:
            self._on_open(self)

    def data_received(self, data: bytes) -> None:
        peer = self._peer
        if peer is not None:
            if not peer._closed and peer.transport is not None:  # peer.write(data), one call less
                peer.transport.write(data)  # first: observing is off the bytes' way
            observe = self._observe
            if observe is not None:
                observe(data)
            if peer._drained is not None and not self._paused and self.transport is not None:
                self._paused = True  # the peer reads slower than we receive: stop reading
                self.transport.pause_reading()
                peer._blocked = self
            return
        driver = self._driver
        if driver is not None:
            driver(data)
            return
        self.keep(data)

    def keep(self, data: bytes) -> None:
        """Buffer ``data`` for a reader (pausing the socket while too much is buffered)."""
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        if self._splice is not None:
            self._splice.ended(self)
        if self._driver is not None:
            self._driver(b"")
        return True  # keep our side open: the answer may still be on its way (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._closed = True
        self._wake()
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        if self._splice is not None:
            self._splice.lost()
        if self._driver is not None:
            self._driver(b"")

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        blocked, self._blocked = self._blocked, None
        if blocked is not None:
            blocked._resume()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def interrupt(self, error: BaseException) -> None:
        """Make the current (or next) wait for data raise ``error``."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_exception(error)
        else:
            self._error = error

    # ---------------------------------------------------------------- reading

    async def fill(self) -> bool:
        """Wait for more bytes in the buffer; False at end of stream."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self.eof:
            return False
        if self._paused:
            self._resume()
        size = len(self.buffer)
        while len(self.buffer) == size and not self.eof:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return len(self.buffer) > size

    def hold_until_drained(self, source: Channel) -> None:
        """Stop reading ``source`` while our transport's buffer is full (until ``resume_writing``)."""
        if self._drained is not None and not source._paused and source.transport is not None:
            source._paused = True
            source.transport.pause_reading()
            self._blocked = source

    def _resume(self) -> None:
        self._paused = False
        if self.transport is not None and not self._closed:
            self.transport.resume_reading()

    async def peek(self, n: int) -> bytes:
        """At least ``n`` buffered bytes (fewer only at end of stream), not consumed."""
        while len(self.buffer) < n and await self.fill():
            pass
        return bytes(self.buffer[:n])

    def take(self, n: int) -> bytes:
        buffer = self.buffer
        if n >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:n])
            del buffer[:n]
        if self._paused and len(buffer) < LOW_WATER:
            self._resume()
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
        if not self.buffer and not await self.fill():
            return b""
        return self.take(n)

    # ---------------------------------------------------------------- writing

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the peer is not reading (the transport's buffer is over its high-water mark)."""
        if self._closed:
            raise ConnectionResetError("connection lost")
        if self._drained is not None:
            await self._drained
            if self._closed:
                raise ConnectionResetError("connection lost")

    def can_write_eof(self) -> bool:
        return self.transport is not None and not self._closed and self.transport.can_write_eof()

    def write_eof(self) -> None:
        if self.transport is not None and not self._closed and not self.transport.is_closing():
            self.transport.write_eof()

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default if self.transport is None else self.transport.get_extra_info(name, default)


class Splice:
    """Two connections joined: what each receives goes to the other straight from the protocol
    callback (no task wakes per chunk), then to ``observe``; a peer that reads slowly
    pauses the sender. An end of stream is passed on as a half-close; ``done`` resolves when both
    directions have ended or either connection is lost (then both are closed)."""

    def __init__(
        self,
        a: Channel,
        b: Channel,
        observe_a: Callable[[bytes], None] | None = None,
        observe_b: Callable[[bytes], None] | None = None,
    ):
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.channels = (a, b)
        self._ended: set[int] = set()
        for source, target, observe in ((a, b, observe_a), (b, a, observe_b)):
            source._splice, source._peer, source._observe = self, target, observe
        for source in (a, b):
            if source._closed:
                self.lost()
                return
        for source in (a, b):
            if source.buffer:  # read before the splice began: goes first
                data = bytes(source.buffer)
                source.buffer.clear()
                source.data_received(data)
            if source._paused and source._peer is not None and source._peer._drained is None:
                source._resume()
            if source.eof:
                self.ended(source)

    def ended(self, source: Channel) -> None:
        if id(source) in self._ended or self.done.done():
            return
        self._ended.add(id(source))
        peer = source._peer
        if peer is not None and peer.can_write_eof():
            peer.write_eof()
        if len(self._ended) == 2:
            self._finish()

    def lost(self) -> None:
        for channel in self.channels:
            channel.close()
        self._finish()

    def _finish(self) -> None:
        for channel in self.channels:
            channel._splice = channel._peer = channel._observe = None
        if not self.done.done():
            self.done.set_result(None)


async def connect(host: str, port: int) -> Channel:
    """A new Channel connected to ``host:port``."""
    loop = asyncio.get_running_loop()
    _, channel = await loop.create_connection(Channel, host, port)
    return channel
