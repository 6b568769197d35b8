"""KubernetesSource through the official client against a minimal API server on loopback.

The stand-in speaks the Kubernetes list and watch wire format (JSON lists, newline-delimited
watch events) for the paths the controller uses, so the client calls themselves are exercised.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.api.proxyconfig import Identity, Mode
from mesh.controller.server import ConfigStore
from mesh.controller.sources import KubernetesSource
from mesh.controller.webhook import generate_certificates, patch_ca_bundle
from tests import article
from tests.integration.helpers import until

MESHCONFIGS = "/apis/config.openservicemesh.io/v1alpha2/namespaces/osm-system/meshconfigs"
EGRESSES = "/apis/policy.openservicemesh.io/v1alpha1/egresses"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/osm-webhook-osm"
PATHS = [
    MESHCONFIGS,
    EGRESSES,
    "/apis/policy.openservicemesh.io/v1alpha1/egressgateways",
    "/apis/specs.smi-spec.io/v1alpha4/httproutegroups",
    "/api/v1/services",
    "/api/v1/namespaces",
    "/api/v1/serviceaccounts",
]


def meshconfig(enable: bool, rv: str) -> dict:
    obj = article.meshconfig(enable)
    obj["metadata"]["resourceVersion"] = rv
    return obj


HTTPBIN_80 = article.httpbin_80()
HTTPBIN_80["metadata"]["resourceVersion"] = "5"
CURL_NS = {
    "metadata": {"name": "curl", "labels": {"openservicemesh.io/monitored-by": "osm"}, "resourceVersion": "2"}
}


class FakeApiServer:
    def __init__(self) -> None:
        self.items: dict[str, list[dict]] = {path: [] for path in PATHS}
        self.items[MESHCONFIGS] = [meshconfig(False, "3")]
        self.items[EGRESSES] = [HTTPBIN_80]
        self.items["/api/v1/namespaces"] = [CURL_NS]
        self.events: dict[str, asyncio.Queue] = {path: asyncio.Queue() for path in PATHS}
        self.list_calls: dict[str, int] = dict.fromkeys(PATHS, 0)
        self.closing = False
        self.webhook_config: dict | None = None
        self.webhook_reads = 0

    async def webhook_configuration(self, request: web.Request) -> web.Response:
        if request.method == "PUT":
            self.webhook_config = await request.json()
            return web.json_response(self.webhook_config)
        self.webhook_reads += 1
        if self.webhook_reads == 1 or self.webhook_config is None:  # not created yet on the first read
            return web.json_response({"kind": "Status", "code": 404, "message": "not found"}, status=404)
        return web.json_response(self.webhook_config)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith(WEBHOOKS):
            return await self.webhook_configuration(request)
        if path.startswith("/api/v1/namespaces/"):
            name = path.rsplit("/", 1)[1]
            found = [n for n in self.items["/api/v1/namespaces"] if n["metadata"]["name"] == name]
            return web.json_response(found[0]) if found else web.json_response({"code": 404}, status=404)
        if path not in self.items:
            return web.json_response({"kind": "Status", "code": 404, "message": "not found"}, status=404)
        if request.query.get("watch") not in ("true", "True", "1"):
            self.list_calls[path] += 1
            return web.json_response({"metadata": {"resourceVersion": "100"}, "items": self.items[path]})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + float(request.query.get("timeoutSeconds", "30"))
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0 and not self.closing:
            try:
                event = await asyncio.wait_for(self.events[path].get(), min(remaining, 0.2))
            except TimeoutError:
                continue
            await response.write(json.dumps(event).encode() + b"\n")
            if event["type"] == "ERROR":
                break
        return response


@pytest.fixture
async def api(tmp_path: Path, monkeypatch):
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.port}"}}],
                "users": [{"name": "u", "user": {"token": "test"}}],
                "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield fake
    fake.closing = True
    await server.close()


async def test_list_watch_and_relist_through_the_official_client(api: FakeApiServer):
    source = KubernetesSource("osm-system")
    store = ConfigStore(source_description=source.description)
    task = asyncio.create_task(source.run(store.publish))
    curl = Identity("curl", "curl")
    try:
        await until(lambda: store.ready)
        cfg = store.config(curl)
        assert cfg.mode is Mode.POLICY and cfg.rules[0].hosts == ("httpbin.org",)
        assert store.snapshot.namespace("curl").labels == {"openservicemesh.io/monitored-by": "osm"}

        await api.events[MESHCONFIGS].put({"type": "MODIFIED", "object": meshconfig(True, "101")})
        await until(lambda: store.config(curl).mode is Mode.PERMISSIVE)

        api.items[EGRESSES] = []
        await api.events[EGRESSES].put(
            {
                "type": "ERROR",
                "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
            }
        )
        await until(lambda: api.list_calls[EGRESSES] >= 2 and store.config(curl).rules == ())

        namespace = await asyncio.to_thread(source.read_namespace, "curl")
        assert namespace["metadata"]["labels"] == {"openservicemesh.io/monitored-by": "osm"}
        assert await asyncio.to_thread(source.read_namespace, "missing") is None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_ca_bundle_is_written_into_the_webhook_configuration(api: FakeApiServer):
    from kubernetes import config

    config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    api.webhook_config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "osm-webhook-osm", "resourceVersion": "7"},
        "webhooks": [
            {
                "name": "sidecar-injector.openservicemesh.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "clientConfig": {
                    "service": {
                        "name": "osm-controller",
                        "namespace": "osm-system",
                        "path": "/mutate-pod-creation",
                    }
                },
                "namespaceSelector": {"matchLabels": {"openservicemesh.io/monitored-by": "osm"}},
            }
        ],
    }
    ca_pem = generate_certificates("osm-system").ca_pem
    await patch_ca_bundle("osm", ca_pem, timeout=20)
    assert api.webhook_reads >= 2  # the first read failed (404) and was retried
    webhook = api.webhook_config["webhooks"][0]
    assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == ca_pem
    assert webhook["clientConfig"]["service"]["path"] == "/mutate-pod-creation"
    assert webhook["namespaceSelector"] == {"matchLabels": {"openservicemesh.io/monitored-by": "osm"}}
    assert webhook["failurePolicy"] == "Fail"
