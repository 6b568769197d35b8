"""Parse what ``curl -sI URL...`` (or ``curl -si URL...``) prints into responses.

With several URLs curl prints one response after another: a status line, headers, an empty line
and, with ``-i`` (not ``-I``, which sends HEAD), the body. Bodies are cut by ``content-length``
or, without it, at the next status line (which curl may print right after the body,
on the same line).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_STATUS = re.compile(rb"HTTP/(\d(?:\.\d)?) (\d{3})(?: ((?:(?!HTTP/)[^\r\n])*))?\r?\n")
#: a status line with its header block; it may follow a body that does not end in a newline
_NEXT_STATUS = re.compile(
    rb"HTTP/\d(?:\.\d)? \d{3}(?: (?:(?!HTTP/)[^\r\n])*)?\r?\n"
    rb"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n]*\r?\n)*\r?\n"
)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class Response:
    http_version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str | None = None

    @property
    def status_line(self) -> str:
        return f"HTTP/{self.http_version} {self.status} {self.reason}".rstrip()

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status_line": self.status_line,
            "status": self.status,
            "reason": self.reason,
            "headers": [[k, v] for k, v in self.headers],
        }
        if self.body is not None:
            out["body"] = self.body
        return out

    def text(self) -> str:
        """The response as curl printed it (status line, headers and body)."""
        lines = [self.status_line, *(f"{k}: {v}" for k, v in self.headers)]
        out = "\n".join(lines)
        if self.body:
            out += "\n\n" + self.body
        return out


def sends_head(curl_args: Sequence[str]) -> bool:
    """True when the arguments contain ``-I``/``--head`` (also inside ``-sI``-style bundles)."""
    for arg in curl_args:
        if arg == "--head":
            return True
        if arg.startswith("-") and not arg.startswith("--") and "I" in arg[1:]:
            return True
    return False


def parse(output: str | bytes, head: bool = True) -> list[Response]:
    """Responses in the order curl printed them; 1xx interim responses are dropped."""
    data = output.encode("utf-8", "surrogateescape") if isinstance(output, str) else output
    responses: list[Response] = []
    pos = 0
    while True:
        match = _STATUS.search(data, pos)
        if match is None:
            break
        end = _HEADER_END.search(data, match.end() - 2)
        header_block = data[match.end() : end.start()] if end else data[match.end() :]
        pos = end.end() if end else len(data)
        headers = _headers(header_block)
        response = Response(
            http_version=match.group(1).decode(),
            status=int(match.group(2)),
            reason=(match.group(3) or b"").decode("utf-8", "replace").strip(),
            headers=headers,
        )
        if 100 <= response.status < 200:
            continue
        if not head:
            length = response.header("content-length")
            if length is not None and length.isdigit():
                body = data[pos : pos + int(length)]
            else:
                following = _NEXT_STATUS.search(data, pos)
                body = data[pos : following.start() if following else len(data)]
            pos += len(body)
            response.body = body.decode("utf-8", "replace")
        responses.append(response)
    return responses


def _headers(block: bytes) -> list[tuple[str, str]]:
    headers = []
    for raw in block.splitlines():
        name, sep, value = raw.decode("latin-1").partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return headers
