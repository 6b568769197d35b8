"""What reading a ClientHello costs the sidecar: it must stay linear in the bytes, or one client
holds the event loop (and every other connection of the pod) for as long as it likes.

Kept out of the mutation subsets (tools/mutation.toml): the test takes seconds while the defect
is there."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.unit.test_sidecar_tls_hello import hello_body, https_to_localhost, keep, records, sni
from tests.wire import Destination, connect, sidecar_before


@pytest.mark.xfail(
    strict=True,
    reason="defect found by issue 14: mesh.proxy.tls.read_client_hello re-parses the hello from its first "
    "byte for every record (peek returns exactly what was asked), so a hello of n tiny records costs n^2 "
    "and blocks the event loop: 64 KiB of 1-byte records hold a sidecar for about 100 s; the gateway's "
    "SNI reader re-parses per received chunk the same way",
)
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
