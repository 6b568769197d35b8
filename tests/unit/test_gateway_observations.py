"""The gateway observes relayed chunks in batches, in arrival order, each at its arrival time."""

from __future__ import annotations

import asyncio
import logging
import time

from mesh.gateway.server import Observations


async def test_chunks_are_observed_together_after_the_delay_in_the_order_they_arrived():
    seen: list[tuple[str, bytes]] = []
    observations = Observations(delay=0.05)
    client = observations.later(lambda data: seen.append(("client", data)))
    server = observations.later(lambda data: seen.append(("server", data)))
    client(b"GET / HTTP/1.1\r\n\r\n")
    server(b"HTTP/1.1 200 OK\r\n")
    await asyncio.sleep(0)
    client(b"GET /2 HTTP/1.1\r\n\r\n")
    assert seen == []  # the relay's writes go first
    await asyncio.sleep(0.2)
    assert seen == [
        ("client", b"GET / HTTP/1.1\r\n\r\n"),
        ("server", b"HTTP/1.1 200 OK\r\n"),
        ("client", b"GET /2 HTTP/1.1\r\n\r\n"),
    ]
    server(b"late")
    observations.run()  # a tunnel that ends observes what is queued at once
    assert seen[-1] == ("server", b"late")
    await asyncio.sleep(0.2)
    assert len(seen) == 4  # nothing observed twice


async def test_each_chunk_is_observed_at_the_time_it_arrived():
    times: list[float] = []
    observations = Observations(delay=0.3)
    observe = observations.later(lambda data: times.append(observations.clock()))
    before = time.time()
    observe(b"a")
    await asyncio.sleep(0.1)
    observe(b"b")
    after = time.time()
    await asyncio.sleep(0.5)
    assert len(times) == 2
    assert before <= times[0] < times[1] <= after  # not the time of the batch, 0.3 s on
    assert times[1] - times[0] >= 0.09
    assert abs(observations.clock() - time.time()) < 0.05  # outside a batch: now


async def test_a_large_backlog_is_observed_at_once():
    seen: list[int] = []
    observations = Observations(delay=60)
    observe = observations.later(lambda data: seen.append(len(data)))
    observe(b"x" * 1000)
    assert seen == []
    observe(b"y" * Observations.MAX_QUEUED)
    assert seen == [1000, Observations.MAX_QUEUED]


async def test_a_failing_observer_does_not_stop_the_others(caplog):
    seen: list[bytes] = []

    def broken(data: bytes) -> None:
        raise RuntimeError("parser bug")

    observations = Observations(delay=0)
    observations.later(broken)(b"a")
    observations.later(seen.append)(b"b")
    with caplog.at_level(logging.ERROR, logger="mesh.gateway"):
        await asyncio.sleep(0.05)
    assert seen == [b"b"]
    assert "observing a tunnel's bytes failed" in caplog.text
