"""Request targets and Host headers the sidecar accepts, refuses and decides on (issue 14, items 4,
7 and 10): the real sidecar on loopback, asserting what the client gets and what the destination
receives."""

from __future__ import annotations

import pytest

from mesh.api.proxyconfig import Mode, Protocol, RequestMatch, Rule
from tests.wire import (
    Destination,
    allow_localhost,
    config,
    connect,
    ok,
    permissive,
    read_response,
    read_to_close,
    sidecar_before,
)

FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 13\r\nconnection: keep-alive\r\n\r\nAccess denied"


async def answer_to(request: bytes, make_config=allow_localhost) -> tuple[bytes, Destination]:
    """Send one request (with ``Connection: close``); return the whole answer and the destination."""
    destination = Destination()
    async with sidecar_before(destination, make_config) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(request)
        answer = await read_to_close(reader)
        writer.close()
    return answer, destination


def request_line(target: bytes, *headers: bytes) -> bytes:
    head = [b"GET " + target + b" HTTP/1.1", *headers, b"Connection: close"]
    return b"\r\n".join(head) + b"\r\n\r\n"


# ---------------------------------------------------------------- item 4: request targets


@pytest.mark.parametrize(
    "target, reason",
    [
        (b"ftp://localhost/file", b"bad absolute URI"),
        (b"ws://localhost/chat", b"bad absolute URI"),
        (b"http:///nohost", b"bad absolute URI"),
        (b"foo", b"bad request target"),
        (b"localhost/x", b"bad request target"),
        (b"?q=1", b"bad request target"),
    ],
)
async def test_targets_other_than_origin_or_http_absolute_form_get_400_and_go_nowhere(target, reason):
    answer, destination = await answer_to(request_line(target, b"Host: localhost"))
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert reason in answer
    assert destination.connections == 0


@pytest.mark.parametrize(
    "target",
    [b"http://localhost/x?y=1", b"HTTP://LocalHost/x", b"http://localhost:8080/x", b"http://localhost"],
)
async def test_http_absolute_form_is_decided_on_its_host_and_forwarded_unchanged(target):
    answer, destination = await answer_to(request_line(target))  # no Host header: the URI names it
    assert answer == ok(b"GET " + target + b" HTTP/1.1 0")
    assert destination.received.startswith(b"GET " + target + b" HTTP/1.1\r\n")


async def test_absolute_form_naming_a_denied_host_is_denied_whatever_the_dialled_address():
    answer, destination = await answer_to(request_line(b"http://evil.test/x"))
    assert answer == FORBIDDEN
    assert destination.connections == 0


async def test_asterisk_form_is_forwarded():
    answer, _ = await answer_to(b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert answer == ok(b"OPTIONS * HTTP/1.1 0")


@pytest.mark.parametrize("fold", [b" ", b"\t"])
async def test_a_folded_header_line_is_refused_as_folded(fold):
    """Item 11: an obs-fold line is refused for what it is, not because its name looks malformed."""
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n" + fold + b"continued\r\n\r\n"
    answer, destination = await answer_to(request)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"\r\n\r\nbad request: folded header line\n")
    assert destination.connections == 0


# ---------------------------------------------------------------- item 10: ports and name lengths


@pytest.mark.parametrize(
    "host, allowed",
    [
        (b"localhost:65535", True),
        (b"localhost:1", True),
        (b"localhost:65536", False),
        (b"localhost:0", False),
        (b"localhost:", False),
        (b"localhost:8o", False),
        (b"[::1]:65535", True),
        (b"[::1]:65536", False),
    ],
)
async def test_host_header_ports_are_1_to_65535(host, allowed):
    answer, destination = await answer_to(request_line(b"/", b"Host: " + host), permissive)
    if allowed:
        assert answer == ok(b"GET / HTTP/1.1 0")
    else:
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert destination.connections == 0


def name_of(length: int) -> bytes:
    """A host name of ``length`` characters: labels of 62, then the rest (1 to 63)."""
    labels = [b"a" * 62] * ((length - 1) // 63)
    return b".".join([*labels, b"b" * (length - 63 * len(labels))])


@pytest.mark.parametrize("length, allowed", [(253, True), (254, False)])
async def test_host_names_are_at_most_253_characters(length, allowed):
    name = name_of(length)
    assert len(name) == length and max(len(label) for label in name.split(b".")) <= 63
    answer, destination = await answer_to(request_line(b"/", b"Host: " + name), permissive)
    if allowed:
        assert answer == ok(b"GET / HTTP/1.1 0")
    else:
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert destination.connections == 0


async def test_a_trailing_dot_does_not_count_towards_the_253():
    answer, _ = await answer_to(request_line(b"/", b"Host: " + name_of(253) + b"."), permissive)
    assert answer == ok(b"GET / HTTP/1.1 0")


# ---------------------------------------------------------------- item 7: path rules, absolute-form


def get_only(port: int):
    """Egress ``matches``: only ``GET /get`` (path regex, whole path, query ignored) to localhost."""
    match = RequestMatch(path_regex="/get", methods=("GET",))
    return config(
        Mode.POLICY, Rule(Protocol.HTTP, port, hosts=("localhost",), matches=(match,), restricted=True)
    )


@pytest.mark.parametrize(
    "target, allowed",
    [
        (b"/get", True),
        (b"/get?show=1", True),
        (b"http://localhost/get", True),
        (b"http://localhost:80/get?show=1", True),
        (b"HTTP://LOCALHOST/get", True),
        (b"http://localhost/headers", False),
        (b"http://localhost/get/more", False),
        (b"http://localhost", False),
        (b"http://localhost/x?/get", False),
        # a defect found by issue 14: the path was taken from the query or the fragment
        (b"http://localhost?/get", False),
        (b"http://localhost#/get", False),
    ],
)
async def test_path_rules_see_the_path_of_absolute_form_targets(target, allowed):
    """The path of ``http://localhost?/get`` is empty (``/``): the server sees ``/`` with a query."""
    destination = Destination()
    async with sidecar_before(destination, get_only) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = await read_response(reader)
        writer.close()
    assert answer == (ok(b"GET " + target + b" HTTP/1.1 0") if allowed else FORBIDDEN)
    assert (destination.connections == 1) is allowed
