"""SNI from a real ClientHello (produced by Python's ssl module)."""

from __future__ import annotations

import ssl

import pytest

from mesh.gateway import tlssni


def client_hello(server_hostname: str | None) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    if server_hostname is None:
        context.check_hostname = False
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_server_name_from_client_hello():
    hello = client_hello("HTTPBin.org")
    assert tlssni.looks_like_tls(hello)
    assert tlssni.server_names(hello) == ["httpbin.org"]


def test_partial_client_hello_asks_for_more():
    hello = client_hello("httpbin.org")
    with pytest.raises(tlssni.NeedMore):
        tlssni.server_names(hello[:60])


def test_client_hello_without_sni_has_no_names():
    context = ssl.create_default_context()
    context.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    assert tlssni.server_names(outgoing.read()) == []


def test_not_tls_is_an_error():
    with pytest.raises(ValueError):
        tlssni.server_names(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
