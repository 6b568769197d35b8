"""CONNECT handling of the gateway, without sockets: what a client sends, what it gets back."""

from __future__ import annotations

import asyncio

import pytest

from mesh.api.tunnel import ConnectRequest, TunnelError
from mesh.gateway import server
from mesh.gateway.server import Gateway, Tunnel
from mesh.proxy.stream import Channel


class FakeChannel(Channel):
    """A client connection without a socket: bytes fed in, answers recorded."""

    __slots__ = ("sent",)

    def __init__(self):
        super().__init__()
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data


async def read_connect(raw: bytes, eof: bool = True):
    channel = FakeChannel()
    channel.data_received(raw)
    if eof:
        channel.eof_received()
    request = await Gateway()._read_connect(Tunnel("0" * 16, "10.0.0.1", 1234, 0.0), channel)
    return request, bytes(channel.sent)


async def test_well_formed_connect_is_accepted_silently():
    request, answer = await read_connect(ConnectRequest("HTTPBin.org", 80, "curl/curl", "http").encode())
    assert request == ConnectRequest("httpbin.org", 80, "curl/curl", "http")
    assert answer == b""


@pytest.mark.parametrize(
    "raw, status, reason",
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"405 Method Not Allowed", b"only CONNECT is served here"),
        (b"CONNECT httpbin.org HTTP/1.1\r\n\r\n", b"400 Bad Request", b"must be host:port"),
        (b"CONNECT a:99999 HTTP/1.1\r\n\r\n", b"400 Bad Request", b"must be host:port"),
        (b"CONNECT a:80 HTTP/1.1\r\nX: " + b"y" * 9000 + b"\r\n\r\n", b"400 Bad Request", b"larger than"),
    ],
)
async def test_bad_requests_get_a_4xx_with_a_reason(raw, status, reason):
    request, answer = await read_connect(raw)
    assert request is None
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert b"connection: close" in answer
    assert reason in answer


async def test_client_leaving_before_the_head_ends_gets_nothing():
    request, answer = await read_connect(b"CONNECT a:80 HTTP/1.1\r\n")
    assert (request, answer) == (None, b"")


async def test_silent_client_is_dropped_after_the_head_timeout(monkeypatch):
    monkeypatch.setattr(server, "HEAD_TIMEOUT", 0.05)
    request, answer = await read_connect(b"", eof=False)
    assert (request, answer) == (None, b"")


async def documentation_address(host, port):
    return ["203.0.113.80"]  # never dialled: open_connection is replaced too


async def test_connect_errors_map_to_502(monkeypatch):
    async def refused(host, port):
        raise ConnectionRefusedError(111, "Connect call failed")

    monkeypatch.setattr(server, "connect", refused)
    monkeypatch.setattr(server, "resolve", documentation_address)
    with pytest.raises(TunnelError) as caught:
        await Gateway()._connect(ConnectRequest("httpbin.org", 80))
    assert caught.value.status == 502
    assert str(caught.value) == "cannot connect to httpbin.org:80: connection refused"


async def test_slow_destination_maps_to_504(monkeypatch):
    async def hangs(host, port):
        await asyncio.sleep(10)

    monkeypatch.setattr(server, "connect", hangs)
    monkeypatch.setattr(server, "resolve", documentation_address)
    with pytest.raises(TunnelError) as caught:
        await Gateway(connect_timeout=0.05)._connect(ConnectRequest("httpbin.org", 80))
    assert caught.value.status == 504
    assert "timed out after 0.05s" in str(caught.value)


# ---------------------------------------------------------------- what the gateway refuses


@pytest.mark.parametrize(
    "address, reason",
    [
        ("fd00:ec2::254", "cloud metadata address"),  # AWS instance metadata over IPv6
        ("fd00:ec2::23", "cloud metadata address"),  # AWS EKS Pod Identity agent over IPv6
        ("100.100.100.200", "cloud metadata address"),  # Alibaba Cloud
        ("192.0.0.192", "cloud metadata address"),  # Oracle Cloud, legacy
        ("168.63.129.16", "cloud metadata address"),  # Azure WireServer
        ("::ffff:100.100.100.200", "cloud metadata address"),  # IPv4-mapped
        ("64:ff9b::6464:64c8", "cloud metadata address"),  # 100.100.100.200 through NAT64
        ("64:ff9b::a9fe:a9fe", "link-local address"),  # 169.254.169.254 through NAT64
        ("64:ff9b::7f00:1", "loopback address"),  # 127.0.0.1 through NAT64
        ("64:ff9b::", "unspecified address"),  # 0.0.0.0 through NAT64
        ("169.254.169.254", "link-local address"),
        ("fe80::a9fe:a9fe", "link-local address"),
    ],
)
def test_refusal_names_why(address, reason):
    assert Gateway(allow_loopback=False).refusal(address, 80) == reason


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",  # a VPC database: private ranges stay reachable
        "172.16.0.10",
        "192.168.1.10",
        "100.64.0.1",  # shared address space, beside Alibaba's metadata address
        "192.0.0.170",  # beside Oracle's
        "fd00:ec2::253",  # the AWS DNS resolver, beside the metadata service
        "64:ff9b::cb00:7150",  # 203.0.113.80 through NAT64
        "203.0.113.80",
    ],
)
def test_refusal_leaves_private_and_public_destinations_alone(address):
    assert Gateway(allow_loopback=False).refusal(address, 80) is None


@pytest.fixture
def dialled(monkeypatch) -> list[str]:
    """The addresses the gateway dials (each refused: nothing answers here)."""
    addresses: list[str] = []

    async def recorded(host, port):
        addresses.append(host)
        raise ConnectionRefusedError(111, "test: nothing answers")

    monkeypatch.setattr(server, "connect", recorded)
    return addresses


def resolving_to(monkeypatch, *addresses: str) -> None:
    async def answer(host, port):
        return list(addresses)

    monkeypatch.setattr(server, "resolve", answer)


async def test_a_name_resolving_to_a_metadata_address_is_refused_and_not_dialled(monkeypatch, dialled):
    resolving_to(monkeypatch, "fd00:ec2::254", "100.100.100.200")
    with pytest.raises(TunnelError) as caught:
        await Gateway()._connect(ConnectRequest("metadata.test", 80))
    assert caught.value.status == 403
    assert str(caught.value) == "refusing to connect to metadata.test:80: cloud metadata address"
    assert dialled == []


async def test_a_metadata_address_among_others_is_skipped(monkeypatch, dialled):
    resolving_to(monkeypatch, "100.100.100.200", "203.0.113.80", "64:ff9b::a9fe:a9fe")
    with pytest.raises(TunnelError) as caught:
        await Gateway()._connect(ConnectRequest("mixed.test", 80))
    assert caught.value.status == 502
    assert dialled == ["203.0.113.80"]
