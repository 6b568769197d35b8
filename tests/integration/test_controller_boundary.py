"""``mesh-controller run --source kubernetes`` keeps the egress boundary's NetworkPolicies (issue 11)
in a loopback API server that speaks the list/watch wire format and NetworkPolicy create, replace,
delete and labelSelector lists, checking every written object against the newest Kubernetes schema:
MeshConfig on -> one policy per meshed namespace (a leftover of an earlier run deleted, a user's own
policy untouched), a namespace leaving the mesh loses its policy, MeshConfig off removes them all."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
from pathlib import Path

import kubernetes_validate
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.controller.__main__ import build_parser, serve
from mesh.controller.boundary import BOUNDARY_LABEL, POLICY_NAME
from mesh.manifests import K8S_VERSIONS
from tests import article
from tests.integration.helpers import free_port, until
from tests.integration.test_controller_kubernetes_api import MESHCONFIGS, FakeApiServer

NETWORKING = "/apis/networking.k8s.io/v1"
NAMESPACES = "/api/v1/namespaces"
SERVICES = "/api/v1/services"
GATEWAYS = "/apis/policy.openservicemesh.io/v1alpha1/egressgateways"
GATEWAY_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "global-egress-gateway", "namespace": "egress-gateway", "resourceVersion": "8"},
    "spec": {
        "ports": [{"port": 1080, "name": "egress-nat-port", "targetPort": 1080}],
        "selector": {"app": "global-egress-gateway"},
    },
}


def namespace(name: str, meshed: bool, rv: str) -> dict:
    labels = {"openservicemesh.io/monitored-by": "osm"} if meshed else {}
    return {"metadata": {"name": name, "labels": labels, "resourceVersion": rv}}


def meshconfig(boundary: bool, rv: str) -> dict:
    obj = article.meshconfig(False, enableEgressBoundary=boundary)
    obj["metadata"]["resourceVersion"] = rv
    return obj


def network_policy(ns: str, name: str, labels: dict) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "resourceVersion": "1"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


class NetworkPolicyApi:
    """NetworkPolicies by (namespace, name), as the API server keeps them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict] = {}
        self.versions = itertools.count(1000)
        self.invalid: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        parts = request.path[len(NETWORKING) :].strip("/").split("/")
        if parts == ["networkpolicies"]:
            key, value = request.query.get("labelSelector", "=").split("=", 1)
            items = [o for o in self.objects.values() if o["metadata"].get("labels", {}).get(key) == value]
            return web.json_response({"metadata": {"resourceVersion": "1"}, "items": items})
        ns = parts[1]
        if request.method == "POST":
            obj = await request.json()
            if (ns, obj["metadata"]["name"]) in self.objects:
                return web.json_response(
                    {"kind": "Status", "code": 409, "reason": "AlreadyExists"}, status=409
                )
            return web.json_response(self._store(obj), status=201)
        name = parts[3]
        if request.method == "PUT":
            return web.json_response(self._store(await request.json()))
        if request.method == "DELETE" and self.objects.pop((ns, name), None) is not None:
            return web.json_response({"kind": "Status", "status": "Success"})
        return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)

    def _store(self, obj: dict) -> dict:
        try:
            kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)
        except kubernetes_validate.ValidationError as exc:
            self.invalid.append(str(exc))
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self.versions))
        self.objects[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return obj

    def names(self) -> set[tuple[str, str]]:
        return set(self.objects)


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch):
    api, policies = FakeApiServer(), NetworkPolicyApi()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path.startswith(NETWORKING):
            return await policies.handle(request)
        return await api.handle(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "loopback", "cluster": {"server": f"http://127.0.0.1:{server.port}"}}],
        "users": [{"name": "controller", "user": {"token": "test"}}],
        "contexts": [{"name": "c", "context": {"cluster": "loopback", "user": "controller"}}],
        "current-context": "c",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield api, policies
    api.closing = True
    await server.close()


async def test_controller_keeps_the_boundary_policies_following_meshconfig_and_namespaces(cluster):
    api, policies = cluster
    ours = {BOUNDARY_LABEL: "osm", "app.kubernetes.io/managed-by": "egress-mesh"}
    policies.objects[("gone", POLICY_NAME)] = network_policy("gone", POLICY_NAME, ours)  # an earlier run's
    policies.objects[("curl", "deny-ingress")] = network_policy("curl", "deny-ingress", {})  # the user's
    api.items[MESHCONFIGS] = [meshconfig(True, "3")]
    api.items[NAMESPACES] = [
        namespace("curl", True, "2"),
        namespace("shop", True, "4"),
        namespace("egress-gateway", True, "6"),
        namespace("osm-system", False, "7"),
    ]
    api.items[SERVICES] = [GATEWAY_SERVICE]
    api.items[GATEWAYS] = [article.global_egress_gateway()]

    args = build_parser().parse_args(
        [
            "run",
            "--source",
            "kubernetes",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            "--webhook-port",
            "0",
        ]
    )
    controller = asyncio.create_task(serve(args))
    try:
        boundary = {("curl", POLICY_NAME), ("shop", POLICY_NAME)}
        await until(lambda: policies.names() == boundary | {("curl", "deny-ingress")}, timeout=20)
        assert policies.invalid == []
        egress = policies.objects[("curl", POLICY_NAME)]["spec"]["egress"]
        gateway_rule = {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "egress-gateway"}},
                    "podSelector": {"matchLabels": {"app": "global-egress-gateway"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 1080}],
        }
        assert gateway_rule in egress

        await api.events[NAMESPACES].put({"type": "MODIFIED", "object": namespace("shop", False, "101")})
        await until(lambda: policies.names() == {("curl", POLICY_NAME), ("curl", "deny-ingress")})

        await api.events[MESHCONFIGS].put({"type": "MODIFIED", "object": meshconfig(False, "102")})
        await until(lambda: policies.names() == {("curl", "deny-ingress")})

        await api.events[MESHCONFIGS].put({"type": "MODIFIED", "object": meshconfig(True, "103")})
        await until(lambda: policies.names() == {("curl", POLICY_NAME), ("curl", "deny-ingress")})
        assert policies.objects[("curl", "deny-ingress")]["spec"]["policyTypes"] == ["Ingress"]
        assert not controller.done()
    finally:
        controller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await controller
