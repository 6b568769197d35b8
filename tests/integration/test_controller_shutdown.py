"""Stopping the controller with long polls open (issue 10, section 3): answered at once, exit 0 in 2 s."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from mesh.api.proxyconfig import Identity, config_url
from mesh.controller.server import ConfigStore, make_app
from mesh.controller.sources import SourceState
from tests.article import meshconfig, meshconfig_yaml
from tests.integration.helpers import free_port

POLLS = 100


async def hold_polls(base: str, session: aiohttp.ClientSession, count: int) -> list[asyncio.Task]:
    identities = [Identity("curl", f"sa{i % 10}") for i in range(count)]
    versions = {}
    for identity in set(identities):
        async with session.get(config_url(base, identity)) as resp:
            versions[identity] = resp.headers["ETag"].strip('"')

    async def poll(identity: Identity) -> tuple[int, str]:
        params = {"version": versions[identity], "wait": "60"}
        async with session.get(config_url(base, identity), params=params) as resp:
            return resp.status, await resp.text()

    return [asyncio.create_task(poll(identity)) for identity in identities]


async def all_held(base: str, session: aiohttp.ClientSession) -> None:
    async for attempt in AsyncRetrying(stop=stop_after_delay(20), wait=wait_fixed(0.1), reraise=True):
        with attempt:
            async with session.get(base + "/metrics") as resp:
                assert f"mesh_controller_proxies_connected {POLLS}.0" in await resp.text()


async def test_cleanup_answers_held_polls_at_once():
    store = ConfigStore()
    await store.publish(SourceState((meshconfig(False),)))
    runner = web.AppRunner(make_app(store))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        polls = await hold_polls(base, session, POLLS)
        await all_held(base, session)
        started = time.monotonic()
        await runner.cleanup()
        took = time.monotonic() - started
        answers = await asyncio.gather(*polls)
    assert took < 1.0, f"cleanup took {took:.1f} s"
    assert set(answers) == {(503, "controller shutting down\n")}


async def test_sigterm_with_long_polls_open_exits_0_within_2_seconds(tmp_path: Path):
    (tmp_path / "meshconfig.yaml").write_text(meshconfig_yaml(False))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesh.controller", "run", "--source", "directory",
         "--manifests", str(tmp_path), "--host", "127.0.0.1", "--port", str(port), "--webhook-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async for attempt in AsyncRetrying(
                stop=stop_after_delay(30), wait=wait_fixed(0.1), retry=retry_if_exception_type(Exception)
            ):
                with attempt:
                    assert proc.poll() is None
                    async with session.get(base + "/readyz") as resp:
                        assert resp.status == 200
            polls = await hold_polls(base, session, POLLS)
            await all_held(base, session)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            took = time.monotonic() - started
            answers = await asyncio.gather(*polls, return_exceptions=True)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=10)
    print(f"\nSIGTERM with {POLLS} long polls open: exit {code} after {took:.2f} s")
    assert code == 0, err
    assert took < 2.0
    assert "Traceback" not in out + err
    assert all(a == (503, "controller shutting down\n") for a in answers), answers[:3]
