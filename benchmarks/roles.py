"""The benchmark's own child processes, kept apart so each imports only what it runs:

``python -m benchmarks.roles sidecar PORT UPSTREAM_PORT CONFIG_FILE``: the sidecar (``Sidecar``,
as ``mesh-proxy run`` runs it, on uvloop where installed) with its original destination fixed to
``127.0.0.1:UPSTREAM_PORT``, standing in for the iptables REDIRECT;
``python -m benchmarks.roles aiohttp PORT``: the aiohttp destination.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

try:
    from mesh.proxy.eventloop import run
except ImportError:  # an older tree under test (before uvloop)
    from asyncio import run

LOOPBACK = "127.0.0.1"
PAYLOAD = '{"url": "/get", "padding": "' + "x" * 256 + '"}'


async def sidecar(port: int, upstream_port: int, config_file: Path) -> None:
    from mesh.api.proxyconfig import ProxyConfig
    from mesh.proxy.origdst import fixed
    from mesh.proxy.sidecar import Sidecar

    config = ProxyConfig.from_json(config_file.read_text())
    proxy = Sidecar(
        config.identity, port=port, host=LOOPBACK, original_destination=fixed(LOOPBACK, upstream_port)
    )
    await proxy.apply(config)
    await asyncio.Event().wait()


async def aiohttp(port: int) -> None:
    from aiohttp import web

    async def get(request: web.Request) -> web.Response:
        return web.Response(text=PAYLOAD, content_type="application/json")

    app = web.Application()
    app.router.add_get("/get", get)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, port, backlog=4096).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    name, port, *rest = sys.argv[1:]
    if name == "sidecar":
        run(sidecar(int(port), int(rest[0]), Path(rest[1])))
    else:
        run(aiohttp(int(port)))
