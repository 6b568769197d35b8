"""The config server over real HTTP on loopback: long poll, health, metrics, status."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from mesh.api.proxyconfig import Identity, Mode, ProxyConfig, config_url
from mesh.controller.server import ConfigStore, make_app
from mesh.controller.sources import SourceState
from tests.article import meshconfig

CURL = Identity("curl", "curl")


@pytest.fixture
async def served():
    store = ConfigStore()
    server = TestServer(make_app(store), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield store, f"http://127.0.0.1:{server.port}", session
    await server.close()


async def get(session: aiohttp.ClientSession, url: str, **params) -> tuple[int, str, Any]:
    async with session.get(url, params={k: str(v) for k, v in params.items()}) as resp:
        return resp.status, await resp.text(), resp.headers.copy()


async def test_immediate_answer_then_304_after_the_wait(served):
    store, base, session = served
    await store.publish(SourceState((meshconfig(False),)))
    url = config_url(base, CURL)

    status, body, headers = await get(session, url)
    assert status == 200
    cfg = ProxyConfig.from_json(body)
    assert cfg.mode is Mode.DISABLED and headers["ETag"] == f'"{cfg.version}"'

    status, body, _ = await get(session, url, version="stale-version", wait=5)
    assert status == 200 and ProxyConfig.from_json(body).version == cfg.version

    started = time.monotonic()
    status, body, _ = await get(session, url, version=cfg.version, wait=0.4)
    elapsed = time.monotonic() - started
    assert status == 304 and body == ""
    assert 0.35 <= elapsed < 2.0


async def test_pending_poll_answers_shortly_after_a_change(served):
    store, base, session = served
    await store.publish(SourceState((meshconfig(False),)))
    version = store.config(CURL).version
    poll = asyncio.create_task(get(session, config_url(base, CURL), version=version, wait=20))
    await asyncio.sleep(0.3)
    assert not poll.done()
    changed_at = time.monotonic()
    await store.publish(SourceState((meshconfig(True),)))
    status, body, _ = await asyncio.wait_for(poll, 5)
    latency = time.monotonic() - changed_at
    assert status == 200
    assert ProxyConfig.from_json(body).mode is Mode.PERMISSIVE
    assert latency < 1.0


async def test_unrelated_change_keeps_the_poll_waiting(served):
    store, base, session = served
    await store.publish(SourceState((meshconfig(False),)))
    version = store.config(CURL).version
    poll = asyncio.create_task(get(session, config_url(base, CURL), version=version, wait=0.6))
    await asyncio.sleep(0.2)
    other = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "y"}, "spec": {}}
    await store.publish(SourceState((meshconfig(False), other)))
    status, _, _ = await poll
    assert status == 304


async def test_readiness_and_not_ready_answers(served):
    store, base, session = served
    assert (await get(session, base + "/healthz"))[0] == 200
    assert (await get(session, base + "/readyz"))[0] == 503
    assert (await get(session, config_url(base, CURL), wait=0.1))[0] == 503
    await store.publish(SourceState((meshconfig(False),)))
    assert (await get(session, base + "/readyz"))[0] == 200
    store.pending.add("caBundle of MutatingWebhookConfiguration osm-webhook-osm")
    status, body, _ = await get(session, base + "/readyz")
    assert status == 503 and "caBundle" in body
    assert (await get(session, config_url(base, CURL)))[0] == 200  # sidecars are served meanwhile


async def test_bad_wait_is_a_400_with_a_message(served):
    store, base, session = served
    await store.publish(SourceState((meshconfig(False),)))
    status, body, _ = await get(session, config_url(base, CURL), wait="soon")
    assert status == 400 and "wait must be a number" in body


async def test_metrics_and_status(served):
    store, base, session = served
    bad_egress = {
        "apiVersion": "policy.openservicemesh.io/v1alpha1",
        "kind": "Egress",
        "metadata": {"name": "no-ports", "namespace": "curl"},
        "spec": {"sources": [{"kind": "ServiceAccount", "name": "curl", "namespace": "curl"}]},
    }
    await store.publish(SourceState((meshconfig(False), bad_egress), errors=("bad.yaml: not valid YAML",)))
    version = store.config(CURL).version
    poll = asyncio.create_task(get(session, config_url(base, CURL), version=version, wait=2))
    await asyncio.sleep(0.2)
    _, metrics, _ = await get(session, base + "/metrics")
    assert "mesh_controller_proxies_connected 1.0" in metrics
    assert f'version="{store.snapshot.version}"' in metrics
    assert 'mesh_controller_errors_total{kind="invalid"} 2.0' in metrics
    await get(session, config_url(base, CURL))
    _, metrics, _ = await get(session, base + "/metrics")
    assert "mesh_controller_config_pushes_total 1.0" in metrics

    async with session.get(base + "/v1/status") as resp:
        status = await resp.json()
    assert status["ready"] is True
    assert status["resources"] == {"MeshConfig": 1}
    assert "bad.yaml: not valid YAML" in status["errors"]
    assert any("Egress curl/no-ports" in e and "spec.ports" in e for e in status["errors"])
    assert status["meshConfig"]["enableEgress"] is False
    await poll
