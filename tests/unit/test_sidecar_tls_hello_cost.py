"""What reading a ClientHello costs the sidecar and the gateway's SNI reader: it must stay linear in
the bytes, or one client holds the event loop (and every other connection of the pod or the
gateway) for as long as it likes (a defect found by issue 14: the hello was re-parsed from its first
byte for every record, so 64 KiB of 1-byte records held a sidecar for about 100 s).

Kept out of the mutation subsets (tools/mutation.toml): the test takes seconds while the defect
is there."""

from __future__ import annotations

import asyncio
import time

from mesh.api.tunnel import ConnectRequest
from mesh.gateway.server import Inspector, Tunnel
from tests.unit.test_sidecar_tls_hello import hello_body, https_to_localhost, keep, records, sni
from tests.wire import Destination, connect, sidecar_before


async def test_a_hello_of_many_tiny_records_is_read_in_linear_time():
    hello = records(hello_body(sni((0, b"localhost")), size=1400), record_size=1)
    destination = Destination(keep)
    async with sidecar_before(destination, https_to_localhost) as sidecar:
        reader, writer = await connect(sidecar)
        started = time.monotonic()
        writer.write(hello)
        while len(destination.received) < len(hello) and time.monotonic() - started < 10:
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        writer.close()
    assert bytes(destination.received) == hello
    assert elapsed < 0.5, f"{len(hello)} bytes of ClientHello took {elapsed:.1f}s"


def test_the_gateway_reads_a_hello_of_many_tiny_records_in_linear_time():
    """Each record arriving in its own chunk, as a client sending one segment per record makes it."""
    hello = records(hello_body(sni((0, b"localhost")), size=4000), record_size=1)
    tunnel = Tunnel("0123456789abcdef", "10.0.0.1", 40000, time.time(), ConnectRequest("localhost", 443))
    inspector = Inspector(tunnel, lambda record: None)
    started = time.monotonic()
    for i in range(0, len(hello), 6):  # 5 bytes of record header, 1 of handshake
        inspector.client_data(hello[i : i + 6])
    elapsed = time.monotonic() - started
    assert tunnel.server_names == ["localhost"]
    assert elapsed < 0.5, f"{len(hello)} bytes of ClientHello in 6-byte chunks took {elapsed:.1f}s"
