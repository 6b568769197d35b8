"""The sidecar's side of the config server's credentials (issue 10): the token file presented as
Bearer and read again before every request, and refusals (401/403/429/503) logged and retried."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.api.proxyconfig import Identity, Mode, ProxyConfig
from mesh.proxy.configsource import ControllerSource

ID = Identity("curl", "curl")
POLICY = ProxyConfig(ID, Mode.POLICY).with_version()
PERMISSIVE = ProxyConfig(ID, Mode.PERMISSIVE).with_version()

Handler = Callable[[web.Request], web.Response]


@pytest.fixture
async def controller() -> AsyncIterator[Callable[[Handler], object]]:
    servers: list[TestServer] = []

    async def start(handler: Handler) -> str:
        app = web.Application()

        async def answer(request: web.Request) -> web.Response:
            return handler(request)

        app.router.add_get("/v1/proxyconfig/curl/curl", answer)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.close()


async def run_until(source: ControllerSource, done: Callable[[list[ProxyConfig]], bool], timeout: float = 10):
    seen: list[ProxyConfig] = []
    reached = asyncio.Event()

    async def on_config(config: ProxyConfig) -> None:
        seen.append(config)
        if done(seen):
            reached.set()

    task = asyncio.create_task(source.run(on_config))
    try:
        await asyncio.wait_for(reached.wait(), timeout)
    finally:
        task.cancel()
    return seen


def events(out: str, name: str) -> list[dict]:
    return [
        e
        for e in (json.loads(line) for line in out.splitlines() if line.startswith("{"))
        if e["event"] == name
    ]


async def test_the_token_is_presented_and_read_again_before_every_request(controller, tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    seen_headers: list[str | None] = []

    def handler(request: web.Request) -> web.Response:
        seen_headers.append(request.headers.get("Authorization"))
        if len(seen_headers) == 1:
            return web.Response(text=PERMISSIVE.to_json())
        if len(seen_headers) == 2:
            token_file.write_text("rotated-token")  # the kubelet rotates the file between two polls
            return web.Response(status=304)
        return web.Response(text=POLICY.to_json())

    base = await controller(handler)
    source = ControllerSource(base, ID, wait=1, token_file=token_file)
    seen = await run_until(source, lambda s: len(s) == 2)
    assert seen == [PERMISSIVE, POLICY]
    assert seen_headers == ["Bearer first-token", "Bearer first-token", "Bearer rotated-token"]


async def test_no_token_file_sends_no_credential(controller, tmp_path: Path):
    seen_headers: list[str | None] = []

    def handler(request: web.Request) -> web.Response:
        seen_headers.append(request.headers.get("Authorization"))
        return web.Response(text=POLICY.to_json())

    base = await controller(handler)
    await run_until(ControllerSource(base, ID, wait=1, token_file=tmp_path / "absent"), lambda s: True)
    assert seen_headers == [None]


@pytest.mark.parametrize(
    "status, reason, slow",
    [
        (401, "invalid token: Signature has expired", True),
        (403, "the credential is for curl/other, not curl/curl", True),
        (429, "too many long polls for curl/curl (limit 512)", True),
        (503, "controller shutting down", False),
    ],
)
async def test_refusals_are_logged_with_the_reason_and_retried_with_backoff(
    controller, tmp_path: Path, capsys, status: int, reason: str, slow: bool
):
    token_file = tmp_path / "token"
    token_file.write_text("some-token")
    asked: list[float] = []

    def handler(request: web.Request) -> web.Response:
        asked.append(time.monotonic())
        if len(asked) <= 3:
            return web.Response(status=status, text=reason + "\n", headers={"Retry-After": "5"})
        return web.Response(text=POLICY.to_json())

    base = await controller(handler)
    source = ControllerSource(
        base, ID, wait=1, token_file=token_file, max_backoff=0.2, max_refused_backoff=0.6
    )
    seen = await run_until(source, lambda s: True)
    assert seen == [POLICY]
    refused = events(capsys.readouterr().out, "controller_refused")
    assert [(e["status"], e["reason"], e["attempt"]) for e in refused] == [
        (status, reason, 1),
        (status, reason, 2),
        (status, reason, 3),
    ]
    waits = [e["retry_in"] for e in refused]
    assert all(0 <= w <= (0.6 if slow else 0.2) for w in waits), waits
    assert len(asked) == 4


async def test_the_refused_backoff_grows_past_the_quick_cap(controller, tmp_path: Path, capsys):
    """401/403/429 do not hammer the controller at the quick cap: their waits may reach the slow cap."""

    def handler(_request: web.Request) -> web.Response:
        return web.Response(status=401, text="no credential\n")

    base = await controller(handler)
    source = ControllerSource(base, ID, wait=1, token_file=None, max_backoff=0.01, max_refused_backoff=0.3)
    task = asyncio.create_task(source.run(lambda _c: asyncio.sleep(0)))
    await asyncio.sleep(2.5)
    task.cancel()
    waits = [e["retry_in"] for e in events(capsys.readouterr().out, "controller_refused")]
    assert len(waits) >= 5 and max(waits) > 0.01 and max(waits) <= 0.3, waits
