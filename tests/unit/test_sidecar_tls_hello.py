"""TLS ClientHellos as the sidecar reads them on the wire: SNI found wherever it sits, hellos that
arrive in pieces, the 64 KiB limit, and the reason a refused hello is logged with (issue 14,
parsing behaviours behind the https decision)."""

from __future__ import annotations

import asyncio
import json

import pytest

from mesh.api.proxyconfig import Mode, Protocol, Rule
from tests.wire import Connection, Destination, config, connect, read_to_close, sidecar_before

MAX_HELLO = 64 * 1024


def extension(kind: int, body: bytes) -> bytes:
    return kind.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def sni(*entries: tuple[int, bytes]) -> bytes:
    names = b"".join(t.to_bytes(1, "big") + len(n).to_bytes(2, "big") + n for t, n in entries)
    return extension(0, len(names).to_bytes(2, "big") + names)


def hello_body(*extensions: bytes, size: int | None = None) -> bytes:
    """A TLS 1.2 ClientHello body; with ``size``, padded (extension 21) to exactly that many bytes."""
    fixed = b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    exts = b"".join(extensions)
    if size is not None:
        exts += extension(21, b"\x00" * (size - len(fixed) - 2 - len(exts) - 4))
    return fixed + len(exts).to_bytes(2, "big") + exts


def records(body: bytes, record_size: int = 16384) -> bytes:
    """The handshake message carrying ``body``, framed in TLS records of at most ``record_size``."""
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    chunks = [handshake[i : i + record_size] for i in range(0, len(handshake), record_size)]
    return b"".join(b"\x16\x03\x01" + len(c).to_bytes(2, "big") + c for c in chunks)


def https_to_localhost(port: int):
    return config(Mode.POLICY, Rule(Protocol.HTTPS, port, hosts=("localhost",)))


async def keep(conn: Connection) -> None:
    while await conn.some():
        pass


async def send(hello: bytes, pieces: int = 1, make_config=https_to_localhost) -> tuple[bytes, Destination]:
    """Send ``hello`` (in ``pieces`` writes) and half-close; return what the destination received
    once the sidecar is done."""
    destination = Destination(keep)
    async with sidecar_before(destination, make_config) as sidecar:
        reader, writer = await connect(sidecar)
        step = -(-len(hello) // pieces)
        for i in range(0, len(hello), step):
            writer.write(hello[i : i + step])
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write_eof()
        answer = await read_to_close(reader)
        writer.close()
        await asyncio.sleep(0.05)
    return answer, destination


def reasons(output: str) -> list[str]:
    return [
        record["reason"]
        for record in map(json.loads, filter(None, output.splitlines()))
        if record.get("event") == "decision"
    ]


@pytest.mark.parametrize(
    "extensions",
    [
        (extension(10, b"\x00\x02\x00\x1d"), sni((0, b"localhost"))),
        (sni((1, b"other-type"), (0, b"localhost")),),
    ],
    ids=["sni-after-another-extension", "host-name-after-another-name-type"],
)
async def test_the_sni_host_name_is_found_wherever_it_sits(extensions, capsys):
    hello = records(hello_body(*extensions))
    _, destination = await send(hello)
    assert bytes(destination.received) == hello  # allowed: relayed unchanged
    assert reasons(capsys.readouterr().out) == ["host localhost allowed"]


@pytest.mark.parametrize("record_size", [16384, 40], ids=["one-record", "many-records"])
async def test_a_hello_arriving_in_pieces_is_read_whole(record_size):
    hello = records(hello_body(sni((0, b"localhost")), size=600), record_size)
    _, destination = await send(hello, pieces=7)
    assert bytes(destination.received) == hello


@pytest.mark.parametrize(
    "hello, reason",
    [
        (
            records(hello_body(sni((0, b"localhost")), sni((0, b"localhost")))),
            "more than one server_name extension",
        ),
        (records(hello_body(sni((0, b"localhost"), (0, b"evil.test")))), "more than one SNI host_name"),
        (records(hello_body(sni((0, b"caf\xc3\xa9.test")))), "SNI host_name is not ASCII"),
        (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "first handshake message is type 2, not ClientHello"),
        (records(hello_body(sni((0, b"localhost"))))[:30], "connection ended inside the ClientHello"),
        (
            b"\x16\x03\x01\x00\x04\x01\x00\x00\x09" + b"\x17\x03\x01\x00\x01\x00",
            "TLS record type 23 is not a",
        ),
        (  # the second record's header alone is enough to refuse it
            b"\x16\x03\x01\x00\x04\x01\x00\x00\x09" + b"\x17\x03\x01\x00\x01",
            "TLS record type 23 is not a handshake",
        ),
        (  # the offset limit: 1-byte records, 6 bytes each on the wire
            records(hello_body(sni((0, b"localhost")), size=11000), record_size=1),
            "ClientHello too large",
        ),
        (records(b"\x03\x03" + b"\x00" * 20), "truncated ClientHello"),
        (records(hello_body(sni((0, b"localhost\n")))), "not a valid host name: 'localhost\\n'"),
    ],
    ids=[
        "two-extensions",
        "two-names",
        "non-ascii",
        "not-client-hello",
        "cut-short",
        "not-handshake",
        "not-handshake-header-alone",
        "too-many-records",
        "truncated",
        "name-and-lf",
    ],
)
async def test_a_refused_hello_closes_and_logs_why(hello, reason, capsys):
    answer, destination = await send(hello)
    assert answer in (b"", b"<reset>")
    assert destination.connections == 0
    (logged,) = reasons(capsys.readouterr().out)
    assert logged.startswith(f"bad ClientHello: {reason}"), logged


@pytest.mark.parametrize("size, passes", [(MAX_HELLO - 4, True), (MAX_HELLO - 3, False)])
async def test_a_client_hello_may_be_64_kib_with_its_header(size, passes, capsys):
    hello = records(hello_body(sni((0, b"localhost")), size=size))
    _, destination = await send(hello)
    assert (bytes(destination.received) == hello) is passes
    if not passes:
        assert reasons(capsys.readouterr().out) == ["bad ClientHello: ClientHello too large"]


async def test_a_record_may_start_at_the_64_kib_offset(capsys):
    """The last record of this hello starts 65536 bytes into the connection; the hello is under 64 KiB."""
    handshake = records(hello_body(sni((0, b"localhost")), size=MAX_HELLO - 14), record_size=MAX_HELLO)[5:]
    chunks = [handshake[i * 16379 : (i + 1) * 16379] for i in range(4)] + [handshake[4 * 16379 :]]
    hello = b"".join(b"\x16\x03\x01" + len(c).to_bytes(2, "big") + c for c in chunks)
    assert len(hello) - len(chunks[-1]) - 5 == MAX_HELLO and len(chunks[-1]) == 10
    _, destination = await send(hello)
    assert bytes(destination.received) == hello
    assert reasons(capsys.readouterr().out) == ["host localhost allowed"]


async def test_a_hello_whose_first_two_bytes_come_alone_is_still_sniffed_as_tls():
    """Sniffing (a port with rules of two protocols): two bytes are enough to tell TLS."""

    def mixed(port: int):
        return config(
            Mode.POLICY,
            Rule(Protocol.HTTPS, port, hosts=("localhost",)),
            Rule(Protocol.TCP, port, cidrs=("10.0.0.0/8",)),
        )

    hello = records(hello_body(sni((0, b"localhost"))))
    destination = Destination(keep)
    async with sidecar_before(destination, mixed) as sidecar:
        reader, writer = await connect(sidecar)
        writer.write(hello[:2])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(hello[2:])
        writer.write_eof()
        await read_to_close(reader)
        writer.close()
        await asyncio.sleep(0.05)
    assert bytes(destination.received) == hello


async def test_a_hello_whose_extensions_claim_more_bytes_than_it_has_is_refused(capsys):
    exts = sni((0, b"localhost"))
    fixed = hello_body()[:-2]
    hello = records(fixed + (len(exts) + 10).to_bytes(2, "big") + exts)
    _, destination = await send(hello)
    assert destination.connections == 0
    assert reasons(capsys.readouterr().out) == ["bad ClientHello: truncated ClientHello"]
