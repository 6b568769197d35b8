"""The gateway observes relayed chunks at the end of the event loop's turn, in arrival order."""

from __future__ import annotations

import asyncio
import logging

from mesh.gateway.server import Observations


async def test_chunks_are_observed_after_the_turn_in_the_order_they_arrived():
    seen: list[tuple[str, bytes]] = []
    observations = Observations()
    client = observations.later(lambda data: seen.append(("client", data)))
    server = observations.later(lambda data: seen.append(("server", data)))
    client(b"GET / HTTP/1.1\r\n\r\n")
    server(b"HTTP/1.1 200 OK\r\n")
    client(b"GET /2 HTTP/1.1\r\n\r\n")
    assert seen == []  # the relay's writes of this turn go first
    await asyncio.sleep(0)
    assert seen == [
        ("client", b"GET / HTTP/1.1\r\n\r\n"),
        ("server", b"HTTP/1.1 200 OK\r\n"),
        ("client", b"GET /2 HTTP/1.1\r\n\r\n"),
    ]
    server(b"late")
    observations.run()  # a tunnel that ends observes what is queued at once
    assert seen[-1] == ("server", b"late")
    await asyncio.sleep(0)
    assert len(seen) == 4  # nothing observed twice


async def test_a_failing_observer_does_not_stop_the_others(caplog):
    seen: list[bytes] = []

    def broken(data: bytes) -> None:
        raise RuntimeError("parser bug")

    observations = Observations()
    observations.later(broken)(b"a")
    observations.later(seen.append)(b"b")
    with caplog.at_level(logging.ERROR, logger="mesh.gateway"):
        await asyncio.sleep(0)
    assert seen == [b"b"]
    assert "observing a tunnel's bytes failed" in caplog.text
