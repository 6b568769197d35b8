"""Config sources (file, controller long-poll) and the mesh-proxy command line."""

import asyncio
import json
import os
import socket
import subprocess
import sys

import pytest
from aiohttp import web

from mesh.api.proxyconfig import Identity, Mode, ProxyConfig, closed
from mesh.proxy.__main__ import main
from mesh.proxy.configsource import ControllerSource, FileSource

ID = Identity("curl", "curl")
PERMISSIVE = ProxyConfig(ID, Mode.PERMISSIVE).with_version()
POLICY = ProxyConfig(ID, Mode.POLICY).with_version()


async def collect(source, until: int, timeout: float = 5.0) -> list[ProxyConfig]:
    seen: list[ProxyConfig] = []
    done = asyncio.Event()

    async def on_config(config: ProxyConfig) -> None:
        seen.append(config)
        if len(seen) >= until:
            done.set()

    task = asyncio.create_task(source.run(on_config))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        task.cancel()
    return seen


async def test_file_source_reloads_and_ignores_invalid_documents(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(PERMISSIVE.to_json())
    source = FileSource(path, poll=0.05)
    seen: list[ProxyConfig] = []

    async def on_config(config: ProxyConfig) -> None:
        seen.append(config)

    task = asyncio.create_task(source.run(on_config))
    await asyncio.sleep(0.2)
    path.write_text('{"mode": "open"}')
    await asyncio.sleep(0.2)
    path.write_text(POLICY.to_json())
    await asyncio.sleep(0.2)
    task.cancel()
    assert [c.mode for c in seen] == [Mode.PERMISSIVE, Mode.POLICY]
    lines = capsys.readouterr().out.splitlines()
    rejected = [json.loads(line) for line in lines if "config_rejected" in line]
    assert len(rejected) == 1 and "ProxyConfig" in rejected[0]["reason"]


async def test_file_source_applies_an_edit_at_once_not_at_the_next_poll(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(PERMISSIVE.to_json())
    source = FileSource(path, poll=30, rescan=30)  # only the file system's events can wake it in time
    seen: list[ProxyConfig] = []
    changed = asyncio.Event()

    async def on_config(config: ProxyConfig) -> None:
        seen.append(config)
        if config.mode is Mode.POLICY:
            changed.set()

    task = asyncio.create_task(source.run(on_config))
    try:
        await asyncio.sleep(0.3)
        (tmp_path / ".config.json.tmp").write_text(POLICY.to_json())
        os.replace(tmp_path / ".config.json.tmp", path)  # as an atomic writer does
        await asyncio.wait_for(changed.wait(), 3)
    finally:
        task.cancel()
    assert [c.mode for c in seen] == [Mode.PERMISSIVE, Mode.POLICY]


async def test_file_source_waits_for_a_folder_that_is_not_there_yet(tmp_path, capsys):
    path = tmp_path / "volume" / "config.json"
    seen = asyncio.create_task(collect(FileSource(path, poll=0.05, rescan=0.1), until=1))
    await asyncio.sleep(0.3)
    path.parent.mkdir()
    path.write_text(POLICY.to_json())
    assert [c.mode for c in await seen] == [Mode.POLICY]
    lines = capsys.readouterr().out.splitlines()
    rejected = [json.loads(line) for line in lines if "config_rejected" in line]
    assert rejected and rejected[0]["reason"] == "file missing or unreadable"


async def test_controller_source_long_polls_with_versions():
    answers = [PERMISSIVE.to_json(), None, '{"schema": "broken", "version": "bad1"}', POLICY.to_json()]
    asked: list[dict] = []

    async def handler(request: web.Request) -> web.Response:
        asked.append(dict(request.query))
        body = answers.pop(0) if answers else None
        if body is None:
            return web.Response(status=304)
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/proxyconfig/curl/curl", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        seen = await collect(ControllerSource(f"http://127.0.0.1:{port}", ID, wait=1), until=2)
    finally:
        await runner.cleanup()
    assert [c.mode for c in seen] == [Mode.PERMISSIVE, Mode.POLICY]
    assert [q.get("version") for q in asked[:4]] == [None, PERMISSIVE.version, PERMISSIVE.version, "bad1"]
    assert asked[0]["wait"] == "1"


async def test_controller_source_retries_until_the_controller_answers(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = ControllerSource(f"http://127.0.0.1:{port}", ID, wait=1, max_backoff=0.2)

    async def late_server() -> web.AppRunner:
        await asyncio.sleep(0.8)
        app = web.Application()

        async def answer(_request: web.Request) -> web.Response:
            return web.Response(text=POLICY.to_json())

        app.router.add_get("/v1/proxyconfig/curl/curl", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    server = asyncio.create_task(late_server())
    seen = await collect(source, until=1)
    await (await server).cleanup()
    assert seen == [POLICY]
    assert "controller_unreachable" in capsys.readouterr().out


def mesh_proxy(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mesh.proxy", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["run"], "--config-file"),
        (["run", "--config-file", "x", "--identity", "nope"], "NAMESPACE/SERVICEACCOUNT"),
        (["run", "--controller", "http://127.0.0.1:1"], "--identity"),
        (["run", "--config-file", "x", "--port", "0"], "--port"),
        (["run", "--config-file", "x", "--gateway-timeout", "0"], "--gateway-timeout"),
    ],
)
def test_cli_errors_are_messages_not_tracebacks(args, message, capsys, monkeypatch):
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_port_in_use(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(PERMISSIVE.to_json())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = mesh_proxy("run", "--config-file", str(config), "--listen", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on port {port}" in result.stderr and "Traceback" not in result.stderr
    assert '"state": "open"' not in result.stdout


def test_fail_closed_before_any_config():
    assert closed(ID).mode == Mode.DISABLED
