import ssl

import pytest

from mesh.proxy.stream import Channel
from mesh.proxy.tls import (
    MAX_HELLO,
    HelloReader,
    NeedMore,
    NotClientHello,
    looks_like_tls,
    read_client_hello,
    server_name,
)
from mesh.proxy.tls import client_hello as tls_client_hello


def client_hello(sni: str | None) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def split_records(hello: bytes, size: int) -> bytes:
    """Re-frame the handshake into TLS records of at most ``size`` payload bytes."""
    header, payload = hello[:3], hello[5:]
    out = b""
    for i in range(0, len(payload), size):
        part = payload[i : i + size]
        out += header + len(part).to_bytes(2, "big") + part
    return out


def inbound(*pieces: bytes) -> Channel:
    channel = Channel()
    for piece in pieces:
        channel.data_received(piece)
    channel.eof_received()
    return channel


async def test_sni_from_a_real_client_hello_is_read_without_consuming():
    hello = client_hello("api.Example.com")
    src = inbound(hello)
    assert looks_like_tls(hello)
    assert server_name(await read_client_hello(src)) == "api.Example.com"
    assert bytes(src.buffer) == hello


async def test_sni_across_records_and_segments():
    framed = split_records(client_hello("httpbin.org"), 50)
    pieces = [framed[i : i + 7] for i in range(0, len(framed), 7)]
    src = inbound(*pieces)
    assert server_name(await read_client_hello(src)) == "httpbin.org"
    assert bytes(src.buffer[: len(framed)]) == framed


async def test_client_hello_without_sni():
    assert server_name(await read_client_hello(inbound(client_hello(None)))) is None


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x10abc", b"\x16\x03\x01\x00\x04\x02\x00\x00\x00"],
)
async def test_not_a_client_hello(data):
    with pytest.raises(NotClientHello):
        await read_client_hello(inbound(data))


def test_truncated_hello_body():
    hello = client_hello("a.example")
    with pytest.raises(NotClientHello):
        server_name(hello[9:60])


def test_partial_client_hello_asks_for_more_bytes():
    hello = client_hello("httpbin.org")
    with pytest.raises(NeedMore):
        tls_client_hello(hello[:60])
    assert server_name(tls_client_hello(hello)) == "httpbin.org"


def test_a_reader_goes_on_where_it_stopped_as_bytes_arrive():
    hello = client_hello("httpbin.org")
    reader = HelloReader()
    for end in range(1, len(hello)):
        with pytest.raises(NeedMore):
            reader.read(hello[:end])
    assert server_name(reader.read(hello)) == "httpbin.org"


def test_oversized_client_hello_is_refused_without_waiting_for_it():
    huge = b"\x16\x03\x01\x00\x04" + b"\x01" + (MAX_HELLO).to_bytes(3, "big")
    with pytest.raises(NotClientHello, match="too large") as refused:
        tls_client_hello(huge)
    assert not isinstance(refused.value, NeedMore)
