"""HTTP/1.x message heads, body framing and the sidecar's own responses.

Parsing is strict on purpose: anything two parties could read differently (two Host headers,
Content-Length with Transfer-Encoding, differing Content-Lengths, folded or malformed header
lines, a Host that disagrees with an absolute URI) is refused with 400 so that the policy
decision and the upstream server always see the same request.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from mesh.proxy.match import BadHost, split_host_port
from mesh.proxy.stream import Channel, HeadTooLarge

MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 64 * 1024

FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 13\r\nconnection: keep-alive\r\n\r\nAccess denied"


def forbidden(method: str) -> bytes:
    """The 403 (osm-edge's bytes); a HEAD answer carries no body, or keep-alive would break."""
    return FORBIDDEN[: -len(b"Access denied")] if method == "HEAD" else FORBIDDEN


_TOKEN_CHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(rf"[{_TOKEN_CHARS}]+")
_VERSION = re.compile(r"HTTP/1\.[01]")
_STATUS = re.compile(r"HTTP/1\.[01] ([0-9]{3})(?: .*)?")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs except HTAB
_TARGET = re.compile(r"[\x21-\x7e]+")  # visible ASCII only: no CTLs, spaces or raw non-ASCII
# Strict chunk-size line: at most 15 hex digits (no 0x, sign, underscore, overflow), optional
# extensions of visible characters, CRLF. Anything laxer lets a lenient upstream split the body
# differently from us (request smuggling past the per-request decision).
_CHUNK_LINE = re.compile(rb"^([0-9A-Fa-f]{1,15})(?:[ \t]*;[\x20-\x7e\t]*)?\r\n$")

# The fast path: one regular expression accepts a whole well-formed head (the usual case) and one
# more splits its header lines, both in C. Anything they do not accept goes through the line-by-line
# parser below, which refuses it with the precise reason (or accepts it, should the fast path be
# stricter somewhere): both paths end in the same checks, so they decide alike.
_FIELD_LINES = rf"\r\n((?:[{_TOKEN_CHARS}]+:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n"
_FAST_REQUEST = re.compile(rf"(([{_TOKEN_CHARS}]+) ([\x21-\x7e]+) (HTTP/1\.[01])){_FIELD_LINES}")
_FAST_RESPONSE = re.compile(rf"(HTTP/1\.([01]) ([0-9]{{3}})(?: [^\n]*)?){_FIELD_LINES}")
# A value is runs of other characters joined by blanks; leading and trailing blanks are left out.
_FIELD = re.compile(rf"([{_TOKEN_CHARS}]+):[\t ]*((?:[^\t \r\n]+|[\t ]+(?=[^\t \r\n]))*+)[\t ]*\r\n")
_FRAMING_FIELDS = frozenset(("host", "content-length", "transfer-encoding", "connection", "expect"))


class BadMessage(ValueError):
    """A message the sidecar refuses (requests: 400; upstream responses: 502)."""


class Framing(Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"


class Head:
    """A message head: start line, header lines and the raw bytes. The lines of a head the fast path
    accepted are split only when asked for (forwarding needs just the framing fields)."""

    __slots__ = ("start", "raw", "_lines", "_headers")

    def __init__(self, start: str, headers: list[tuple[str, str]] | None, raw: bytes, lines: str = ""):
        self.start = start
        self.raw = raw
        self._headers = headers
        self._lines = lines  # the header lines, each ending with CRLF, when ``headers`` is None

    @property
    def headers(self) -> list[tuple[str, str]]:
        if self._headers is None:
            self._headers = _FIELD.findall(self._lines)
        return self._headers

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Head):
            return NotImplemented
        return (self.start, self.headers, self.raw) == (other.start, other.headers, other.raw)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Head({self.start!r}, {self.headers!r}, {self.raw!r})"


@dataclass(slots=True)  # not frozen: cheaper to build, once per message
class Request:
    method: str
    target: str
    version: str
    head: Head
    host: str | None  # normalised, without port; None for HTTP/1.0 without Host
    framing: Framing
    length: int
    keep_alive: bool
    expect_continue: bool


@dataclass(slots=True)  # not frozen: cheaper to build, once per message
class Response:
    status: int
    head: Head
    framing: Framing
    length: int
    keep_alive: bool


def _tokens(values: list[str]) -> list[str]:
    if len(values) == 1 and "," not in values[0]:  # the usual case: one field, one token
        token = values[0].strip().lower()
        return [token] if token else []
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


def _framing_fields(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The values of the headers that decide host, framing and persistence, by lower-case name."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        if key in _FRAMING_FIELDS:
            found.setdefault(key, []).append(value)
    return found


_FRAMING_LINE = re.compile(
    r"\r\n(host|content-length|transfer-encoding|connection|expect):([^\r]*)", re.IGNORECASE | re.ASCII
)


def _scan_fields(lines: str) -> dict[str, list[str]]:
    """``_framing_fields`` for header lines the fast expression accepted, without splitting every
    line: there CRLF ends each line and values hold no CR, so one search finds exactly these fields."""
    found: dict[str, list[str]] = {}
    for name, value in _FRAMING_LINE.findall("\r\n" + lines):
        found.setdefault(name.lower(), []).append(value.strip(" \t"))
    return found


def _parse_head(raw: bytes) -> Head:
    """The line-by-line parser: slower than the fast path, with a precise reason for each refusal."""
    text = raw.decode("latin-1")
    if not text.endswith("\r\n\r\n"):
        raise BadMessage("head does not end with an empty line")
    lines = text[:-4].split("\r\n")
    headers = []
    for line in lines[1:]:
        if "\r" in line or "\n" in line:
            raise BadMessage("bare CR or LF in the head")
        if line[:1] in (" ", "\t"):
            raise BadMessage("folded header line")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise BadMessage(f"malformed header line {line[:80]!r}")
        if _CONTROL.search(value):
            raise BadMessage(f"control character in header {name[:40]!r}")
        headers.append((name, value.strip(" \t")))
    return Head(lines[0], headers, raw)


def _content_length(values: list[str] | None) -> int | None:
    if not values:
        return None
    if len(values) == 1 and values[0].isdigit() and values[0].isascii():  # the usual case
        return int(values[0])
    lengths = {v.strip() for value in values for v in value.split(",")}
    if len(lengths) > 1:
        raise BadMessage("differing Content-Length values")
    (value,) = lengths
    if not (value.isascii() and value.isdigit()):
        raise BadMessage(f"bad Content-Length {value[:40]!r}")
    return int(value)


def parse_request(raw: bytes) -> Request:
    match = _FAST_REQUEST.fullmatch(raw.decode("latin-1"))
    if match is None:
        return parse_request_strictly(raw)
    start, method, target, version, lines = match.groups()
    head = Head(start, None, raw, lines)
    return _request(method, target, version, head, _scan_fields(lines))


def parse_request_strictly(raw: bytes) -> Request:
    """``parse_request`` without its fast path (the fuzz tests check that both agree)."""
    head = _parse_head(raw)
    parts = head.start.split(" ")
    if (
        len(parts) != 3
        or not _TOKEN.fullmatch(parts[0])
        or not _TARGET.fullmatch(parts[1])
        or not _VERSION.fullmatch(parts[2])
    ):
        raise BadMessage(f"bad request line {head.start[:80]!r}")
    return _request(parts[0], parts[1], parts[2], head, _framing_fields(head.headers))


def _request(method: str, target: str, version: str, head: Head, fields: dict[str, list[str]]) -> Request:
    if method == "CONNECT":
        raise BadMessage("CONNECT is not served by the sidecar")
    host = _request_host(fields.get("host", ()), target, version)
    if len(fields) == 1 and "host" in fields:  # the usual case: what the general path below gives
        return Request(method, target, version, head, host, Framing.NONE, 0, version == "HTTP/1.1", False)

    length = _content_length(fields.get("content-length"))
    codings = _tokens(fields["transfer-encoding"]) if "transfer-encoding" in fields else ()
    if codings:
        if length is not None:
            raise BadMessage("both Content-Length and Transfer-Encoding")
        if version == "HTTP/1.0" or codings[-1] != "chunked":
            raise BadMessage("Transfer-Encoding must end with chunked")
        framing, length = Framing.CHUNKED, 0
    elif length:
        framing = Framing.LENGTH
    else:
        framing, length = Framing.NONE, 0

    connection = _tokens(fields["connection"]) if "connection" in fields else ()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    expect = "expect" in fields and "100-continue" in _tokens(fields["expect"])
    return Request(method, target, version, head, host, framing, length, keep_alive, expect)


def _request_host(hosts: Sequence[str], target: str, version: str) -> str | None:
    if len(hosts) > 1:
        raise BadMessage("more than one Host header")
    try:
        from_header = split_host_port(hosts[0])[0] if hosts and hosts[0] else None
        from_uri = None
        if target[:1] == "/" or target == "*":
            pass
        elif "://" in target:
            try:
                url = urlsplit(target)
            except ValueError:  # e.g. an unterminated IPv6 literal
                raise BadMessage(f"bad absolute URI {target[:80]!r}") from None
            if url.scheme.lower() not in ("http", "https") or not url.netloc or "@" in url.netloc:
                raise BadMessage(f"bad absolute URI {target[:80]!r}")
            from_uri = split_host_port(url.netloc)[0]
        else:
            raise BadMessage(f"bad request target {target[:80]!r}")
    except BadHost as exc:
        raise BadMessage(str(exc)) from None
    if from_uri and from_header and from_uri != from_header:
        raise BadMessage("Host header disagrees with the absolute URI")
    host = from_uri or from_header
    if host is None and version == "HTTP/1.1":
        raise BadMessage("HTTP/1.1 request without Host")
    return host


def parse_response(raw: bytes, method: str) -> Response:
    match = _FAST_RESPONSE.fullmatch(raw.decode("latin-1"))
    if match is None:
        return parse_response_strictly(raw, method)
    start, minor, status, lines = match.groups()
    head = Head(start, None, raw, lines)
    return _response(int(status), minor == "1", method, head, _scan_fields(lines))


def parse_response_strictly(raw: bytes, method: str) -> Response:
    """``parse_response`` without its fast path (the fuzz tests check that both agree)."""
    head = _parse_head(raw)
    match = _STATUS.fullmatch(head.start)
    if not match:
        raise BadMessage(f"bad status line {head.start[:80]!r}")
    http11 = head.start.startswith("HTTP/1.1")
    return _response(int(match.group(1)), http11, method, head, _framing_fields(head.headers))


def _response(status: int, http11: bool, method: str, head: Head, fields: dict[str, list[str]]) -> Response:
    connection = _tokens(fields["connection"]) if "connection" in fields else ()
    keep_alive = "close" not in connection and (http11 or "keep-alive" in connection)
    length = _content_length(fields.get("content-length"))
    codings = _tokens(fields["transfer-encoding"]) if "transfer-encoding" in fields else ()
    if method == "HEAD" or status < 200 or status in (204, 304):
        return Response(status, head, Framing.NONE, 0, keep_alive)
    if codings:
        if codings[-1] == "chunked":
            return Response(status, head, Framing.CHUNKED, 0, keep_alive)
        return Response(status, head, Framing.UNTIL_CLOSE, 0, False)
    if length is not None:
        return Response(status, head, Framing.LENGTH if length else Framing.NONE, length, keep_alive)
    return Response(status, head, Framing.UNTIL_CLOSE, 0, False)


async def read_head(src: Channel) -> bytes | None:
    """One message head; None at a clean end of stream. Raises BadMessage when too large."""
    try:
        return await src.read_until(b"\r\n\r\n", MAX_HEAD)
    except HeadTooLarge:
        raise BadMessage(f"head larger than {MAX_HEAD} bytes") from None
    except asyncio.IncompleteReadError:
        raise BadMessage("stream ended inside the head (lines must end with CRLF)") from None


def with_buffered_body(src: Channel, head: bytes, framing: Framing, length: int) -> tuple[bytes, int]:
    """``head`` plus the part of a Content-Length body already buffered (one write instead of
    two for small messages), and how many body bytes remain to relay."""
    if framing != Framing.LENGTH or not src.buffer:
        return head, length
    ready = src.take(min(length, len(src.buffer)))
    return head + ready, length - len(ready)


async def relay_body(src: Channel, dst: Channel | None, framing: Framing, length: int) -> None:
    """Copy one body from ``src`` to ``dst`` (None: discard) in its framing."""
    if framing == Framing.LENGTH:
        await _relay_length(src, dst, length)
    elif framing == Framing.CHUNKED:
        await _relay_chunked(src, dst)
    elif framing == Framing.UNTIL_CLOSE:
        while data := await src.read_some():
            await _write(dst, data)


async def _relay_length(src: Channel, dst: Channel | None, length: int) -> None:
    while length > 0:
        data = await src.read_some(min(length, 65536))
        if not data:
            raise asyncio.IncompleteReadError(b"", length)
        length -= len(data)
        await _write(dst, data)


async def _relay_chunked(src: Channel, dst: Channel | None) -> None:
    try:
        while True:
            line = await src.read_until(b"\r\n", MAX_CHUNK_LINE)
            if line is None:
                raise asyncio.IncompleteReadError(b"", None)
            match = _CHUNK_LINE.match(line)
            if not match:
                raise BadMessage(f"bad chunk size line {line[:40]!r}")
            size = int(match.group(1), 16)
            await _write(dst, line)
            if size == 0:
                break
            await _relay_length(src, dst, size)
            if await src.read_exactly(2) != b"\r\n":
                raise BadMessage("chunk not followed by CRLF")
            await _write(dst, b"\r\n")
        total = 0
        while True:  # trailers, up to the empty line
            line = await src.read_until(b"\r\n", MAX_HEAD)
            if line is None:
                raise asyncio.IncompleteReadError(b"", None)
            total += len(line)
            if total > MAX_TRAILERS:
                raise BadMessage(f"trailers larger than {MAX_TRAILERS} bytes")
            if line != b"\r\n":
                _check_field_line(line[:-2])
            await _write(dst, line)
            if line == b"\r\n":
                return
    except HeadTooLarge:
        raise BadMessage("chunk line too long") from None


def _check_field_line(line: bytes) -> None:
    """A trailer must be a header line as strict as those in the head."""
    text = line.decode("latin-1")
    name, sep, value = text.partition(":")
    if not sep or not _TOKEN.fullmatch(name) or _CONTROL.search(value):  # (a folded line's name has a blank)
        raise BadMessage(f"malformed trailer line {text[:80]!r}")


async def _write(dst: Channel | None, data: bytes) -> None:
    if dst is not None:
        dst.write(data)
        await dst.drain()


def status_response(status: int, phrase: str, body: str) -> bytes:
    """A plain-text answer from the sidecar itself, closing the connection."""
    payload = (body + "\n").encode()
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    ).encode() + payload
