"""HTTP/1.x message heads as the gateway's observer reads them (``httpstream``): the start line, the
header lines (names lower case, values stripped) and the body framing they announce. A plain head
is read by one regular expression; any other by ``parse_lines``, which says why one is malformed.
"""

from __future__ import annotations

import re

METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT")

# Body framings
UNTIL_CLOSE = -1
OPAQUE = -2
CHUNKED = -3


def looks_like_http(first_bytes: bytes) -> bool:
    method, sep, _ = first_bytes[:16].partition(b" ")
    return bool(sep) and method in METHODS


class Head:
    """A message head: start line and header lines (names lower case, values stripped)."""

    __slots__ = ("start", "_headers", "_lines", "_found", "_joined")

    def __init__(self, start: tuple[str, str, str], headers: list[tuple[str, str]] | None, lines: str = ""):
        self.start = start
        self._headers = headers
        self._lines = lines  # a plain head's header lines, each after CRLF, when ``headers`` is None
        self._found: dict[str, str] | None = None
        self._joined: dict[str, str] | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        if self._headers is None:
            self._headers = [
                (name.lower(), value.strip()) for name, value in _PLAIN_FIELD.findall(self._lines)
            ]
        return self._headers

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Head):
            return NotImplemented
        return (self.start, self.headers) == (other.start, other.headers)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Head({self.start!r}, {self.headers!r})"

    def get(self, name: str) -> str | None:
        """The value of header ``name`` (lower case), several joined with ", "."""
        if self._headers is None and name in _FOUND_NAMES:  # a plain head: one search, no split
            found = self._found
            if found is None:
                found = self._found = {}
                for key, value in _FOUND_FIELD.findall(self._lines):
                    key, value = key.lower(), value.strip()
                    found[key] = f"{found[key]}, {value}" if key in found else value
            return found.get(name)
        joined = self._joined
        if joined is None:
            headers = self.headers
            joined = self._joined = dict(headers)
            if len(joined) < len(headers):  # a name occurs more than once
                lists: dict[str, list[str]] = {}
                for key, value in headers:
                    lists.setdefault(key, []).append(value)
                joined = self._joined = {key: ", ".join(values) for key, values in lists.items()}
        return joined.get(name)

    def framing(self) -> int:
        """Body length from the headers: CHUNKED, a length, or UNTIL_CLOSE when neither is given."""
        encoding = self.get("transfer-encoding")
        if encoding:
            encoding = encoding.lower()
            return CHUNKED if encoding.rsplit(",", 1)[-1].strip() == "chunked" else UNTIL_CLOSE
        length = self.get("content-length")
        if length is None:
            return UNTIL_CLOSE
        if length.isdigit():  # the usual case
            return int(length)
        values = {v.strip() for v in length.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise ValueError(f"bad content-length {length!r}")
        return int(values.pop())


# Most heads: a start line of three parts and header lines ``token: printable ASCII``; for these
# one regular expression splits the lines (in C), and the same strip() and lower() as below apply.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PLAIN_HEAD = re.compile(rf"([^ \r\n]*) ([^ \r\n]*) ([^\r\n]*)((?:\r\n{_TOKEN}:[\t\x20-\x7e]*)*)")
_PLAIN_FIELD = re.compile(rf"\r\n({_TOKEN}):([\t\x20-\x7e]*)")
# The fields the observer looks up, found in a plain head's lines by one search: there CRLF only
# starts a line, so ``CRLF name:`` is a field of that name.
_FOUND_NAMES = frozenset(("host", "content-length", "transfer-encoding"))
_FOUND_FIELD = re.compile(
    r"\r\n(host|content-length|transfer-encoding):([\t\x20-\x7e]*)", re.IGNORECASE | re.ASCII
)
# The same two on the bytes, for the observer's shortcuts: a head decoded as latin-1 matches where
# its bytes do.
#: a plain head as bytes, without its blank line: groups method, target, rest and the header lines
PLAIN_HEAD_BYTES = re.compile(_PLAIN_HEAD.pattern.encode())
#: a Host, Content-Length or Transfer-Encoding field in a plain head's lines, as bytes: (name, value)
FOUND_FIELD_BYTES = re.compile(_FOUND_FIELD.pattern.encode(), re.IGNORECASE)


def parse_head(raw: bytes) -> Head:
    text = raw.decode("latin-1")
    plain = _PLAIN_HEAD.fullmatch(text)
    if plain is not None:
        method, target, rest, lines = plain.groups()
        return Head((method, target, rest), None, lines)
    return parse_lines(text)


#: the bytes that end a head: its last line's CRLF and the blank line
HEAD_END = b"\r\n\r\n"


def parse_or_none(raw: bytes) -> Head | None:
    """``parse_head``, or None for a head it refuses or one the general path skips (a stray CRLF first)."""
    if raw.startswith(b"\r\n"):
        return None  # stray CRLF before a message: the general path skips it
    try:
        return parse_head(raw)
    except ValueError:
        return None


def parse_lines(text: str) -> Head:
    """``parse_head`` line by line: any head, with the reason when it is malformed."""
    lines = text.split("\r\n")
    start = lines[0].split(" ", 2)
    if len(start) != 3:
        raise ValueError(f"malformed start line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"malformed header line {line!r}")
        headers.append((name.lower(), value.strip()))
    return Head((start[0], start[1], start[2]), headers)
