"""``mesh.manifests.kube.Kubernetes`` (the official client) against a minimal API server on loopback:
discovery, server-side apply, merge patch, list by label, delete, and errors as messages."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from mesh import cli
from mesh.api.load import merge_patch
from mesh.manifests.kube import ClusterUnreachable, KubeError, Kubernetes

VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
BUILTIN = {
    "v1": [
        ("namespaces", "Namespace", False),
        ("services", "Service", True),
        ("pods", "Pod", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("secrets", "Secret", True),
    ],
    "apps/v1": [("deployments", "Deployment", True)],
    "rbac.authorization.k8s.io/v1": [
        ("clusterroles", "ClusterRole", False),
        ("clusterrolebindings", "ClusterRoleBinding", False),
        ("roles", "Role", True),
        ("rolebindings", "RoleBinding", True),
    ],
    "admissionregistration.k8s.io/v1": [
        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False)
    ],
    "apiextensions.k8s.io/v1": [("customresourcedefinitions", "CustomResourceDefinition", False)],
}


def served(with_crds: bool = True) -> dict[str, list[tuple[str, str, bool]]]:
    """Built-in resources plus those of the CRDs applied so far (as a real API server does)."""
    resources = {gv: list(found) for gv, found in BUILTIN.items()}
    for key, obj in FakeApiServer.objects.items() if with_crds else ():
        if key.startswith("apiextensions.k8s.io/v1/"):
            spec = obj["spec"]
            for version in spec["versions"]:
                resources.setdefault(f"{spec['group']}/{version['name']}", []).append(
                    (spec["names"]["plural"], spec["names"]["kind"], spec["scope"] == "Namespaced")
                )
    return resources


class FakeApiServer(BaseHTTPRequestHandler):
    objects: dict[str, dict[str, Any]] = {}
    requests: list[tuple[str, str, str]] = []  # method, path with query, content type
    #: how many group lists (GET /apis) still leave out established CRDs, as an API server does
    #: for a moment after a CRD is established
    discovery_lag = 0

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, message: str) -> None:
        self._send(
            code,
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code},
        )

    def _route(self) -> tuple[str, str | None, str, str | None] | None:
        """(groupVersion, namespace, plural, name) of a resource path."""
        parts = urlparse(self.path).path.strip("/").split("/")
        if parts[0] == "api" and len(parts) > 2:
            group_version, rest = "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) > 3:
            group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        if rest[0] == "namespaces" and len(rest) >= 3:
            return group_version, rest[1], rest[2], rest[3] if len(rest) > 3 else None
        return group_version, None, rest[0], rest[1] if len(rest) > 1 else None

    def _discovery(self) -> dict[str, Any] | None:
        path = urlparse(self.path).path.rstrip("/")
        if path == "/version":
            fields = ("buildDate", "compiler", "gitCommit", "gitTreeState", "goVersion", "platform")
            return {"major": "1", "minor": "36", "gitVersion": "v1.36.0", **dict.fromkeys(fields, "x")}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            crds = any(key.startswith("apiextensions.k8s.io/v1/") for key in FakeApiServer.objects)
            lagging = crds and FakeApiServer.discovery_lag > 0
            FakeApiServer.discovery_lag -= lagging
            groups = [gv for gv in served(with_crds=not lagging) if "/" in gv]
            return {
                "kind": "APIGroupList",
                "groups": [
                    {
                        "name": gv.split("/")[0],
                        "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                        "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]},
                    }
                    for gv in groups
                ],
            }
        group_version = path.removeprefix("/api/").removeprefix("/apis/")
        resources = served()
        if group_version in resources and path in (f"/api/{group_version}", f"/apis/{group_version}"):
            return {
                "kind": "APIResourceList",
                "groupVersion": group_version,
                "resources": [
                    {
                        "name": plural,
                        "singularName": kind.lower(),
                        "namespaced": ns,
                        "kind": kind,
                        "verbs": VERBS,
                    }
                    for plural, kind, ns in resources[group_version]
                ],
            }
        return None

    def _key(self, route: tuple[str, str | None, str, str | None]) -> str:
        return "/".join(str(p) for p in route)

    def _record(self) -> None:
        self.requests.append((self.command, self.path, self.headers.get("Content-Type", "")))

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        if self.headers.get("Authorization") == "Bearer wrong":
            return self._status(401, "Unauthorized")
        if (found := self._discovery()) is not None:
            return self._send(200, found)
        route = self._route()
        if route is None:
            return self._status(404, "no such path")
        if route[2] == "pods":
            return self._status(403, 'pods is forbidden: User "meshctl" cannot list resource "pods"')
        if route[3] is None:
            wanted = parse_qs(urlparse(self.path).query).get("labelSelector", [""])[0]
            selector = dict(p.split("=", 1) for p in wanted.split(",") if p)
            items = [
                o
                for k, o in self.objects.items()
                if k.startswith(f"{route[0]}/") and k.split("/")[-2] == route[2]
                and selector.items() <= (o["metadata"].get("labels") or {}).items()
            ]  # fmt: skip
            return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
        found = self.objects.get(self._key(route))
        return self._send(200, found) if found else self._status(404, f"{route[2]} {route[3]!r} not found")

    def do_PATCH(self) -> None:  # noqa: N802
        self._record()
        route = self._route()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self._key(route)
        if self.headers["Content-Type"] == "application/apply-patch+yaml":
            if body["kind"] == "CustomResourceDefinition":
                body["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
            if body["kind"] == "Deployment":
                n = body["spec"]["replicas"]
                body["status"] = dict.fromkeys(
                    ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"), n
                )
            self.objects[key] = body
        elif key in self.objects:
            self.objects[key] = merge_patch(self.objects[key], body)
        else:
            return self._status(404, "not found")
        return self._send(200, self.objects[key])

    def do_DELETE(self) -> None:  # noqa: N802
        self._record()
        found = self.objects.pop(self._key(self._route()), None)
        return self._send(200, found) if found else self._status(404, "not found")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A running fake API server; yields the path of a kubeconfig pointing at it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the client's discovery cache goes there
    FakeApiServer.objects = {}
    FakeApiServer.requests = []
    FakeApiServer.discovery_lag = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{httpd.server_port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
        "current-context": "fake",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    yield path
    httpd.shutdown()
    httpd.server_close()


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def test_server_side_apply_get_list_patch_delete(server: Path) -> None:
    api = Kubernetes(kubeconfig=str(server))
    assert api.server_version() == "v1.36.0"
    assert api.apply(namespace("curl")) == "created"
    assert api.apply(namespace("curl")) == "configured"
    method, path, content_type = [r for r in FakeApiServer.requests if r[0] == "PATCH"][-1]
    assert path.startswith("/api/v1/namespaces/curl?")
    query = parse_qs(urlparse(path).query)
    assert query["fieldManager"] == ["meshctl"], query
    assert query["force"][0].lower() == "true", query
    assert content_type == "application/apply-patch+yaml"
    assert api.get("v1", "Namespace", "nope") is None
    api.patch_merge(
        "v1", "Namespace", "curl", {"metadata": {"labels": {"openservicemesh.io/monitored-by": "osm"}}}
    )
    assert FakeApiServer.requests[-1][2] == "application/merge-patch+json"
    api.apply(namespace("other"))
    listed = api.list("v1", "Namespace", label_selector="openservicemesh.io/monitored-by=osm")
    assert [n["metadata"]["name"] for n in listed] == ["curl"]
    assert api.delete("v1", "Namespace", "other") is True
    assert api.delete("v1", "Namespace", "other") is False


def test_api_errors_become_messages(server: Path) -> None:
    api = Kubernetes(kubeconfig=str(server))
    with pytest.raises(KubeError, match=r'listing Pod: 403 pods is forbidden: User "meshctl" cannot list'):
        api.list("v1", "Pod", "osm-system")
    with pytest.raises(KubeError, match=r"does not serve MeshConfig \(config.openservicemesh.io/v1alpha2\)"):
        api.get("config.openservicemesh.io/v1alpha2", "MeshConfig", "osm-mesh-config", "osm-system")
    with pytest.raises(KubeError, match="patching Namespace ghost: not found"):
        api.patch_merge("v1", "Namespace", "ghost", {"metadata": {}})


def test_meshctl_namespace_add_through_the_api(server: Path, capsys: pytest.CaptureFixture[str]) -> None:
    FakeApiServer.objects["v1/None/namespaces/curl"] = namespace("curl")
    assert cli.main(["namespace", "add", "curl", "--kubeconfig", str(server)]) == 0
    labels = FakeApiServer.objects["v1/None/namespaces/curl"]["metadata"]["labels"]
    assert labels == {"openservicemesh.io/monitored-by": "osm"}
    assert "Namespace [curl] successfully added to mesh [osm]" in capsys.readouterr().out
    assert cli.main(["status", "--kubeconfig", str(server)]) == 1  # no controller, no CRDs here
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err


def test_meshctl_install_through_the_api(server: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["install", "--set=osm.enableEgress=true", "--kubeconfig", str(server), "--timeout", "10"]
    assert cli.main(argv) == 0, capsys.readouterr()
    meshconfig = FakeApiServer.objects[
        "config.openservicemesh.io/v1alpha2/osm-system/meshconfigs/osm-mesh-config"
    ]
    assert meshconfig["spec"]["traffic"]["enableEgress"] is True
    assert "admissionregistration.k8s.io/v1/None/mutatingwebhookconfigurations/osm-webhook-osm" in (
        FakeApiServer.objects
    )
    out = capsys.readouterr().out
    assert "Mesh [osm] installed; egress is permissive" in out
    FakeApiServer.objects["v1/None/namespaces/curl"] = {
        **namespace("curl"),
        "metadata": {"name": "curl", "labels": {"openservicemesh.io/monitored-by": "osm"}},
    }
    assert cli.main(["status", "--kubeconfig", str(server)]) == 0
    out = capsys.readouterr().out
    assert "controller:      ready" in out and "namespaces:      curl" in out
    assert cli.main(["uninstall", "--kubeconfig", str(server)]) == 0
    assert not any("osm-controller" in key for key in FakeApiServer.objects)


def test_meshctl_install_waits_for_the_crds_kinds_to_be_discovered(
    server: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An established CRD's kind may be missing from discovery for a moment: install retries."""
    FakeApiServer.discovery_lag = 2
    argv = ["install", "--kubeconfig", str(server), "--timeout", "20"]
    assert cli.main(argv) == 0, capsys.readouterr()
    assert (
        "config.openservicemesh.io/v1alpha2/osm-system/meshconfigs/osm-mesh-config" in FakeApiServer.objects
    )
    assert FakeApiServer.discovery_lag == 0  # both lagging answers were seen, and retried past
    out = capsys.readouterr().out
    assert "MeshConfig osm-system/osm-mesh-config created" in out


def test_rejected_credentials_are_named(server: Path) -> None:
    server.write_text(server.read_text().replace("token: t", "token: wrong"))
    with pytest.raises(
        ClusterUnreachable, match=r"the cluster at http://127.0.0.1:\d+ refused the credentials"
    ):
        Kubernetes(kubeconfig=str(server))
