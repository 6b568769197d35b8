"""Passive HTTP/1.x observation of a tunnel: which requests went through and how they were answered.

The gateway relays bytes unchanged; it only feeds copies to an ``HttpObserver``, which parses
request heads (client side) and response heads plus body framing (server side) incrementally:
Content-Length, chunked, HEAD/204/304 without body, 1xx interim responses, read-until-close,
several requests per connection (keep-alive and pipelining). Anything it cannot follow (not HTTP,
an upgrade, a malformed head) makes it stop observing; the relay is never affected.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mesh.gateway.httphead import (
    CHUNKED,
    FOUND_FIELD_BYTES,
    HEAD_END,
    OPAQUE,
    PLAIN_HEAD_BYTES,
    UNTIL_CLOSE,
    Head,
    parse_head,
    parse_or_none,
)

MAX_HEAD = 65536
MAX_LINE = 4096


class MessageStream:
    """Splits one direction of a connection into messages. ``framing(head)`` gives each body length."""

    HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, TRAILER, DONE = range(6)

    def __init__(self, framing: Callable[[Head], int]):
        self._framing = framing
        self._state = self.HEAD
        self._buf = bytearray()
        self._remaining = 0
        self.body_bytes = 0

    @property
    def stopped(self) -> bool:
        return self._state == self.DONE

    @property
    def reading_until_close(self) -> bool:
        return self._state == self.BODY and self._remaining == UNTIL_CLOSE

    def feed(self, data: bytes) -> list[tuple[str, Head | int]]:
        """Return events: ``("head", Head)`` and ``("end", body_bytes)``."""
        if self._state == self.DONE:
            return []
        if self.reading_until_close:
            self.body_bytes += len(data)
            return []
        events: list[tuple[str, Head | int]] = []
        try:
            if self._state == self.HEAD and not self._buf:
                data = self._whole_messages(data, events)
            if data:
                self._buf += data
                while self._step(events):
                    pass
        except ValueError:
            self.stop()
        return events

    def _whole_messages(self, data: bytes, events: list[tuple[str, Head | int]]) -> bytes:
        """What ``_step`` does, for the messages at the start of ``data`` that arrived whole (the
        usual case), without copying them into the buffer; returns the bytes left for ``_step``."""
        while data and not data.startswith(b"\r\n"):
            end = data.find(b"\r\n\r\n")
            if end < 0:
                return data
            head = parse_head(data[:end])
            events.append(("head", head))
            self.body_bytes = 0
            framing = self._framing(head)
            data = data[end + 4 :]
            if 0 < framing <= len(data):  # all of a Content-Length body is here
                self.body_bytes = framing
                events.append(("end", framing))
                data = data[framing:]
            elif not self._start_body(framing, events):
                return b""  # stopped
            elif self._state != self.HEAD:
                return data  # a body that goes on
        return data

    def _step(self, events: list[tuple[str, Head | int]]) -> bool:
        buf = self._buf
        if self._state == self.HEAD:
            while buf.startswith(b"\r\n"):  # stray CRLF between messages (RFC 9112 2.2)
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ValueError("head too large")
                return False
            head = parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            events.append(("head", head))
            self.body_bytes = 0
            return self._start_body(self._framing(head), events)
        if self._state in (self.BODY, self.CHUNK_DATA):
            if self._remaining == UNTIL_CLOSE:
                self.body_bytes += len(buf)
                buf.clear()
                return False
            taken = min(self._remaining, len(buf))
            del buf[:taken]
            self._remaining -= taken
            if self._state == self.BODY:
                self.body_bytes += taken
            if self._remaining:
                return False
            if self._state == self.BODY:
                events.append(("end", self.body_bytes))
            self._state = self.HEAD if self._state == self.BODY else self.CHUNK_SIZE
            return True
        if self._state == self.CHUNK_SIZE:
            line = self._line()
            if line is None:
                return False
            size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            self.body_bytes += size
            self._state, self._remaining = (self.TRAILER, 0) if size == 0 else (self.CHUNK_DATA, size + 2)
            return True
        if self._state == self.TRAILER:
            line = self._line()
            if line is None:
                return False
            if not line:
                events.append(("end", self.body_bytes))
                self._state = self.HEAD
            return True
        return False

    def _start_body(self, framing: int, events: list[tuple[str, Head | int]]) -> bool:
        if framing == 0:
            events.append(("end", 0))
            return True
        if framing == OPAQUE:
            self.stop()
            return False
        if framing == CHUNKED:
            self._state = self.CHUNK_SIZE
            return True
        self._state, self._remaining = self.BODY, framing
        return True

    def _line(self) -> bytes | None:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_LINE:
                raise ValueError("line too long")
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def stop(self) -> None:
        self._state = self.DONE
        self._buf.clear()

    def close(self) -> list[tuple[str, Head | int]]:
        """The peer closed: a read-until-close body ends here."""
        if self.reading_until_close:
            self._state = self.HEAD
            return [("end", self.body_bytes)]
        return []


@dataclass(slots=True)
class Exchange:
    method: str
    target: str
    host: str
    started: float
    status: int | None = None
    response_bytes: int = 0
    finished: float | None = None

    @property
    def path(self) -> str:
        """Origin-form path of the target (absolute-form ``http://h/p`` gives ``/p``)."""
        return _absolute(self.target)[1] if "://" in self.target else self.target


def _absolute(target: str) -> tuple[str, str]:
    """Authority and origin-form path of an absolute-form target: the authority ends at the first
    "/", "?" or "#", and an empty path is "/" (``http://h?q`` is ``h``, ``/?q``)."""
    rest = target.split("://", 1)[1]
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    path = rest[end:]
    return rest[:end], path if path[:1] == "/" else "/" + path


def host_of(head: Head, default: str) -> str:
    """Host header (or absolute-form target) lower-cased, without port or trailing dot."""
    return _host(head.get("host"), head.start[1], default)


def _host(value: str | None, target: str, default: str) -> str:
    """``host_of`` from the Host header's value (None without one) and the request target."""
    if not value and "://" in target:
        value = _absolute(target)[0]
    if not value:
        return default
    value = value.strip().lower()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


class HttpObserver:
    """Both directions of one tunnel; ``completed`` collects finished exchanges in order."""

    def __init__(self, default_host: str, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._default_host = default_host
        self._pending: deque[Exchange] = deque()
        self._answering: deque[Exchange | None] = deque()  # one per response head, None for 1xx
        self.completed: list[Exchange] = []
        self._requests = MessageStream(self._request_framing)
        self._responses = MessageStream(self._response_framing)

    @property
    def stopped(self) -> bool:
        return self._requests.stopped and self._responses.stopped

    def client_data(self, data: bytes) -> None:
        if self._whole_request(data):
            return
        for event, value in self._requests.feed(data):
            if event == "head":
                assert isinstance(value, Head)
                method, target, _ = value.start
                self._pending.append(
                    Exchange(method, target, host_of(value, self._default_host), self._clock())
                )

    def _whole_request(self, data: bytes) -> bool:
        """The usual case, one whole request head without a body: what ``client_data`` does for
        it, without its events. False for anything else."""
        requests = self._requests
        if requests._state != MessageStream.HEAD or requests._buf or data.find(HEAD_END) != len(data) - 4:
            return False
        plain = PLAIN_HEAD_BYTES.fullmatch(data, 0, len(data) - 4)
        if plain is not None:  # the commonest heads, read from the bytes without a Head
            fields = FOUND_FIELD_BYTES.findall(data, plain.start(4), plain.end(4))
            method = plain[1]
            if method != b"CONNECT" and len(fields) <= 1:
                if not fields:
                    value = None
                elif fields[0][0].lower() == b"host":
                    value = fields[0][1].strip().decode("latin-1")
                else:
                    return False  # a body (or a framing the general path refuses)
                target = plain[2].decode("latin-1")
                host = _host(value, target, self._default_host)
                requests.body_bytes = 0
                self._pending.append(Exchange(method.decode("latin-1"), target, host, self._clock()))
                return True
        head = parse_or_none(data[:-4])
        if (
            head is None
            or head.start[0] == "CONNECT"
            or head.get("transfer-encoding") is not None
            or head.get("content-length") is not None
        ):
            return False
        requests.body_bytes = 0
        method, target, _ = head.start
        self._pending.append(Exchange(method, target, host_of(head, self._default_host), self._clock()))
        return True

    def server_data(self, data: bytes) -> list[Exchange]:
        """Feed bytes from upstream; return the exchanges that completed."""
        done = self._whole_response(data)
        if done is not None:
            return done
        self._handle_response_events(self._responses.feed(data))
        return self._take_completed()

    def _whole_response(self, data: bytes) -> list[Exchange] | None:
        """The usual case, one whole final response with all of its Content-Length body (or none)
        answering the oldest request: what ``server_data`` does for it, without its events.
        None for anything else."""
        responses = self._responses
        if responses._state != MessageStream.HEAD or responses._buf or not self._pending or self._answering:
            return None
        end = data.find(HEAD_END)
        if end <= 0 or self.completed:
            return None
        plain = PLAIN_HEAD_BYTES.fullmatch(data, 0, end)
        if plain is not None:  # the commonest heads, read from the bytes without a Head
            fields = FOUND_FIELD_BYTES.findall(data, plain.start(4), plain.end(4))
            if len(fields) == 1 and fields[0][0].lower() == b"content-length":
                return self._whole_response_with_length(plain[1], plain[2], fields[0][1].strip(), data, end)
        head = parse_or_none(data[:end])
        if head is None:
            return None
        version, code, _ = head.start
        exchange = self._pending[0]
        if not (version.startswith("HTTP/1.") and code.isascii() and code.isdigit()):
            return None
        status = int(code)
        if status < 200 or status in (204, 304) or exchange.method in ("HEAD", "CONNECT"):
            return None
        try:
            length = head.framing()
        except ValueError:
            return None
        if length < 0 or len(data) - end - 4 != length:
            return None
        self._pending.popleft()
        exchange.status = status
        exchange.response_bytes = responses.body_bytes = length
        exchange.finished = self._clock()
        return [exchange]

    def _whole_response_with_length(
        self, version: bytes, code: bytes, length: bytes, data: bytes, end: int
    ) -> list[Exchange] | None:
        """``_whole_response`` for a plain head whose only framing field is Content-Length."""
        exchange = self._pending[0]
        if not (version.startswith(b"HTTP/1.") and code.isdigit() and length.isdigit()):
            return None  # (a list of lengths, or not a length: the general path sorts it out)
        status = int(code)
        if status < 200 or status in (204, 304) or exchange.method in ("HEAD", "CONNECT"):
            return None
        size = int(length)
        if len(data) - end - 4 != size:
            return None
        self._pending.popleft()
        exchange.status = status
        exchange.response_bytes = self._responses.body_bytes = size
        exchange.finished = self._clock()
        return [exchange]

    def close(self) -> list[Exchange]:
        """The tunnel ended: finish what is open; requests without an answer get status None."""
        self._handle_response_events(self._responses.close())
        for exchange in self._answering:
            if exchange is not None:
                self._finish(exchange)
        self._answering.clear()
        while self._pending:
            self.completed.append(self._pending.popleft())
        return self._take_completed()

    @staticmethod
    def _request_framing(head: Head) -> int:
        if head.start[0] == "CONNECT":
            return OPAQUE
        framing = head.framing()
        return 0 if framing == UNTIL_CLOSE else framing  # requests without length have no body

    def _response_framing(self, head: Head) -> int:
        version, code, _ = head.start
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ValueError(f"not an HTTP/1.x response: {head.start!r}")
        status = int(code)
        if not self._pending:
            raise ValueError("response without a request")
        exchange = self._pending[0]
        if status == 101 or (exchange.method == "CONNECT" and 200 <= status < 300):
            self._pending.popleft()
            exchange.status = status
            self._finish(exchange)
            self._requests.stop()
            return OPAQUE
        if 100 <= status < 200:
            self._answering.append(None)
            return 0
        self._pending.popleft()
        exchange.status = status
        self._answering.append(exchange)
        if exchange.method == "HEAD" or status in (204, 304):
            return 0
        return head.framing()

    def _handle_response_events(self, events: list[tuple[str, Head | int]]) -> None:
        for event, value in events:
            if event == "end" and self._answering:
                exchange = self._answering.popleft()
                if exchange is not None:
                    assert isinstance(value, int)
                    exchange.response_bytes = value
                    self._finish(exchange)

    def _finish(self, exchange: Exchange) -> None:
        exchange.finished = self._clock()
        self.completed.append(exchange)

    def _take_completed(self) -> list[Exchange]:
        done, self.completed = self.completed, []
        return done
