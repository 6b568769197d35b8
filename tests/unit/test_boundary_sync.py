"""The boundary's NetworkPolicies written through the official kubernetes client to a small stateful
API server on loopback: objects by path, 409 AlreadyExists on a create of an existing name, 409
Conflict on a replace with a stale resourceVersion, 404 for unknown namespaces and objects, and
every written object checked against the Kubernetes schema of the version the server plays
(422 Invalid otherwise), as a real API server would."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate
import pytest
from kubernetes import client

from mesh.controller.boundary import BOUNDARY_LABEL, POLICY_NAME, compile_boundary
from mesh.controller.boundary_sync import BoundaryReconciler, BoundarySyncError, NetworkPolicySync
from mesh.controller.reconciler import Reconciler
from mesh.manifests import K8S_VERSIONS
from mesh.manifests.install import InstallOptions, cluster_role
from tests.article import global_egress_gateway, httpbin_80, meshconfig
from tests.unit.test_boundary import GATEWAY_SERVICE, namespace

PREFIX = "/apis/networking.k8s.io/v1"
VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class ApiState:
    def __init__(self, version: str) -> None:
        self.version = version
        self.namespaces = {"curl", "shop", "egress-gateway", "osm-system"}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.counter = itertools.count(1)
        #: status codes to answer the next requests with, whatever they are
        self.failures: list[int] = []
        #: bump the stored resourceVersion right before the next PUT (a concurrent writer)
        self.race_next_replace = False
        #: namespace -> message: creates there are refused as invalid (rules beyond the schema)
        self.refuse_create: dict[str, str] = {}
        #: what the controller's installed ClusterRole lets it do to NetworkPolicies (RBAC)
        self.allowed_verbs = {
            verb
            for rule in cluster_role(InstallOptions())["rules"]
            if "networking.k8s.io" in rule["apiGroups"] and "networkpolicies" in rule["resources"]
            for verb in rule["verbs"]
        }

    def store(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self.counter))
        self.objects[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return obj

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]


def make_handler(state: ApiState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str, message: str) -> None:
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}
            self._send(code, {**body, "message": message})

        def _body(self) -> dict[str, Any]:
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

        def _handle(self) -> None:
            url = urlparse(self.path)
            state.requests.append((self.command, url.path))
            if state.failures:
                code = state.failures.pop(0)
                self._status(code, "Forbidden" if code == 403 else "ServiceUnavailable", f"injected {code}")
                return
            parts = url.path.removeprefix(PREFIX).strip("/").split("/")
            collection = len(parts) in (1, 3)  # networkpolicies, namespaces/NS/networkpolicies
            verb = "list" if self.command == "GET" and collection else VERBS[self.command]
            if verb not in state.allowed_verbs:
                return self._status(403, "Forbidden", f"cannot {verb} networkpolicies")
            if parts == ["networkpolicies"] and self.command == "GET":
                return self._list(parse_qs(url.query).get("labelSelector", [""])[0])
            if len(parts) < 3 or parts[0] != "namespaces" or parts[2] != "networkpolicies":
                return self._status(404, "NotFound", f"no route {url.path}")
            ns, name = parts[1], parts[3] if len(parts) > 3 else None
            if ns not in state.namespaces:
                return self._status(404, "NotFound", f'namespaces "{ns}" not found')
            if self.command == "POST" and name is None:
                return self._create(ns, self._body())
            if self.command == "PUT" and name:
                return self._replace(ns, name, self._body())
            if self.command == "DELETE" and name:
                if state.objects.pop((ns, name), None) is None:
                    return self._status(404, "NotFound", f'networkpolicies "{name}" not found')
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            self._status(405, "MethodNotAllowed", self.command)

        def _list(self, selector: str) -> None:
            wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
            items = [
                o
                for _, o in sorted(state.objects.items())
                if all((o["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
            ]
            meta = {"resourceVersion": str(next(state.counter))}
            self._send(
                200,
                {
                    "kind": "NetworkPolicyList",
                    "apiVersion": "networking.k8s.io/v1",
                    "metadata": meta,
                    "items": items,
                },
            )

        def _invalid(self, obj: dict[str, Any]) -> bool:
            try:
                kubernetes_validate.validate(obj, state.version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                self._status(422, "Invalid", f"NetworkPolicy is invalid: {exc}")
                return True
            return False

        def _create(self, ns: str, obj: dict[str, Any]) -> None:
            name = obj["metadata"]["name"]
            if ns in state.refuse_create:
                return self._status(422, "Invalid", state.refuse_create[ns])
            if (ns, name) in state.objects:
                return self._status(409, "AlreadyExists", f'networkpolicies "{name}" already exists')
            if obj["metadata"].get("namespace", ns) != ns:
                return self._status(400, "BadRequest", "namespace of the object does not match the URL")
            if not self._invalid(obj):
                self._send(201, state.store({**obj, "metadata": {**obj["metadata"], "namespace": ns}}))

        def _replace(self, ns: str, name: str, obj: dict[str, Any]) -> None:
            current = state.objects.get((ns, name))
            if current is None:
                return self._status(404, "NotFound", f'networkpolicies "{name}" not found')
            if state.race_next_replace:
                state.race_next_replace = False
                current = state.store(current)
            if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return self._status(
                    409, "Conflict", "the object has been modified; please apply your changes"
                )
            if not self._invalid(obj):
                self._send(200, state.store(obj))

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


@pytest.fixture
def api(request) -> Iterator[tuple[ApiState, NetworkPolicySync]]:
    """The server plays the newest supported Kubernetes version unless a test names another."""
    state = ApiState(getattr(request, "param", K8S_VERSIONS[-1]))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    api_client = client.ApiClient(configuration)
    try:
        yield state, NetworkPolicySync(client.NetworkingV1Api(api_client), "osm")
    finally:
        server.shutdown()
        server.server_close()
        api_client.close()


ARTICLE = [
    meshconfig(False, enableEgressBoundary=True),
    namespace("osm-system", None),
    namespace("curl"),
    namespace("shop"),
    namespace("egress-gateway", None),
    httpbin_80(),
    global_egress_gateway(),
    GATEWAY_SERVICE,
]


def plan(objects=ARTICLE):
    return compile_boundary(Reconciler().admit(copy.deepcopy(objects)), "osm").policies


def without(name: str, objects=ARTICLE) -> list[dict]:
    return [o for o in objects if o["metadata"]["name"] != name]


def user_policy(ns: str, name: str, labels: dict | None = None) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


@pytest.mark.parametrize("api", K8S_VERSIONS, indirect=True)
def test_creates_schema_valid_labelled_policies_then_writes_nothing_while_unchanged(api):
    state, sync = api
    result = sync.sync(plan())
    assert result.created == ["curl/egress-mesh-boundary", "shop/egress-mesh-boundary"]
    assert sorted(state.objects) == [("curl", POLICY_NAME), ("shop", POLICY_NAME)]
    stored = state.objects[("curl", POLICY_NAME)]
    assert stored["metadata"]["labels"][BOUNDARY_LABEL] == "osm"
    assert stored["spec"] == plan()[0]["spec"]
    writes = len(state.writes())
    again = sync.sync(plan())
    assert not again.changed
    assert len(state.writes()) == writes


def test_changes_replace_with_the_resource_version_read_and_unwanted_ones_go(api):
    state, sync = api
    sync.sync(plan())
    shop_version = state.objects[("shop", POLICY_NAME)]["metadata"]["resourceVersion"]
    objects = [*without("shop"), namespace("shop", None)]  # shop leaves the mesh
    objects = [o for o in objects if o is not GATEWAY_SERVICE]  # the gateway's Service is gone
    result = sync.sync(plan(objects))
    assert (result.created, result.updated, result.deleted) == (
        [],
        ["curl/egress-mesh-boundary"],
        ["shop/egress-mesh-boundary"],
    )
    assert ("shop", POLICY_NAME) not in state.objects
    assert ("PUT", f"{PREFIX}/namespaces/curl/networkpolicies/{POLICY_NAME}") in state.requests
    rules = state.objects[("curl", POLICY_NAME)]["spec"]["egress"]
    assert all("egress-gateway" not in json.dumps(rule) for rule in rules)
    assert shop_version


def test_turning_the_boundary_off_removes_only_its_own(api):
    state, sync = api
    state.store(user_policy("curl", "deny-ingress"))
    state.store(user_policy("shop", POLICY_NAME, {BOUNDARY_LABEL: "edge"}))  # another mesh's
    sync.sync(plan([*without("curl"), namespace("curl")]))
    off = [*without("osm-mesh-config"), meshconfig(False, enableEgressBoundary=False)]
    result = sync.sync(plan(off))
    assert result.deleted == ["curl/egress-mesh-boundary"]
    assert sorted(state.objects) == [("curl", "deny-ingress"), ("shop", POLICY_NAME)]


def test_edited_or_deleted_policies_are_restored(api):
    state, sync = api
    sync.sync(plan())
    state.objects[("curl", POLICY_NAME)]["spec"]["egress"] = []
    del state.objects[("shop", POLICY_NAME)]
    result = sync.sync(plan())
    assert (result.created, result.updated) == (["shop/egress-mesh-boundary"], ["curl/egress-mesh-boundary"])
    assert state.objects[("curl", POLICY_NAME)]["spec"] == plan()[0]["spec"]


def test_a_foreign_policy_with_the_same_name_is_left_alone_and_reported(api):
    state, sync = api
    state.store(user_policy("curl", POLICY_NAME))
    result = sync.sync(plan())
    assert result.created == ["shop/egress-mesh-boundary"]
    assert result.foreign == [
        f"NetworkPolicy curl/{POLICY_NAME} exists without the label {BOUNDARY_LABEL}=osm: "
        "egress-mesh leaves it alone, so this namespace has no egress boundary"
    ]
    assert state.objects[("curl", POLICY_NAME)]["spec"]["policyTypes"] == ["Ingress"]


def test_a_concurrent_write_is_a_conflict_and_the_next_sync_wins(api):
    state, sync = api
    sync.sync(plan())
    state.objects[("curl", POLICY_NAME)]["spec"]["egress"] = []
    state.race_next_replace = True
    with pytest.raises(
        BoundarySyncError, match="NetworkPolicy curl/egress-mesh-boundary: 409 the object has been modified"
    ):
        sync.sync(plan())
    assert sync.sync(plan()).updated == ["curl/egress-mesh-boundary"]


def test_a_namespace_deleted_meanwhile_is_no_error(api):
    state, sync = api
    state.namespaces.discard("shop")
    assert sync.sync(plan()).created == ["curl/egress-mesh-boundary"]


def test_forbidden_says_which_permission_is_missing(api):
    state, sync = api
    state.failures = [403]
    with pytest.raises(BoundarySyncError) as caught:
        sync.sync(plan())
    assert str(caught.value) == (
        f"cannot list NetworkPolicies ({BOUNDARY_LABEL}=osm): 403 injected 403 "
        "(the controller's ClusterRole needs networkpolicies in networking.k8s.io)"
    )


def test_an_object_the_server_refuses_is_reported_and_the_others_written(api):
    state, sync = api
    state.refuse_create["curl"] = 'NetworkPolicy.networking.k8s.io "egress-mesh-boundary" is invalid: spec'
    with pytest.raises(BoundarySyncError) as caught:
        sync.sync(plan())
    assert str(caught.value) == (
        'NetworkPolicy curl/egress-mesh-boundary: 422 NetworkPolicy.networking.k8s.io "egress-mesh-boundary" '
        "is invalid: spec"
    )
    assert sorted(state.objects) == [("shop", POLICY_NAME)]


def test_a_body_the_client_cannot_send_is_an_error_not_a_crash(api):
    state, sync = api
    (curl, shop) = plan()
    broken = copy.deepcopy(curl)
    broken["spec"]["egress"][0]["ports"][0]["protocol"] = ["UDP"]  # must be a string
    with pytest.raises(BoundarySyncError, match="NetworkPolicy curl/egress-mesh-boundary: .*protocol"):
        sync.sync([broken, shop])
    assert sorted(state.objects) == [("shop", POLICY_NAME)]


async def test_reconciler_waits_for_the_first_snapshot_then_retries_until_the_api_answers(api):
    state, sync = api
    state.store(user_policy("curl", POLICY_NAME, {BOUNDARY_LABEL: "osm"}))  # left by an earlier run
    reconciler = BoundaryReconciler(sync, resync=0.05, retry_wait=lambda _: 0.05)
    task = asyncio.create_task(reconciler.run())
    try:
        await asyncio.sleep(0.3)
        assert state.requests == []  # no snapshot yet: nothing listed, nothing deleted
        state.failures = [503, 503, 503]
        reconciler.update(Reconciler().admit(copy.deepcopy(ARTICLE)))
        for _ in range(100):
            if reconciler.last is not None:
                break
            await asyncio.sleep(0.05)
        assert reconciler.last is not None and state.failures == []
        assert state.objects[("curl", POLICY_NAME)]["spec"] == plan()[0]["spec"]
        assert ("shop", POLICY_NAME) in state.objects
        reconciler.update(Reconciler().admit(copy.deepcopy(without("osm-mesh-config") + [meshconfig(True)])))
        for _ in range(100):
            if not state.objects:
                break
            await asyncio.sleep(0.05)
        assert state.objects == {}
    finally:
        task.cancel()


async def test_without_the_permission_and_with_the_boundary_off_the_reconciler_stays_quiet(api, caplog):
    """An install whose ClusterRole predates networkpolicies: nothing to remove, no retry loop."""
    state, sync = api
    caplog.set_level(logging.INFO, logger="mesh.controller.boundary")
    reconciler = BoundaryReconciler(sync, resync=0.05, retry_wait=lambda _: 0.01)
    state.failures = [403] * 1000
    reconciler.update(Reconciler().admit(copy.deepcopy(without("osm-mesh-config") + [meshconfig(True)])))
    task = asyncio.create_task(reconciler.run())
    try:
        await asyncio.sleep(0.3)
        lists = len(state.requests)
        assert 1 <= lists <= 10  # one list per resync, none retried
        infos = [r for r in caplog.records if "cannot list NetworkPolicies" in r.getMessage()]
        assert len(infos) == 1 and infos[0].levelname == "INFO"
        reconciler.update(Reconciler().admit(copy.deepcopy(ARTICLE)))  # turned on: now it is an error
        await asyncio.sleep(0.3)
        assert len(state.requests) > lists + 10
        assert any(r.levelname == "WARNING" and "403" in r.getMessage() for r in caplog.records)
    finally:
        task.cancel()
