"""meshctl: help for every command, dry runs, clear errors, and the cluster commands against an
in-memory API (the same methods as ``mesh.manifests.kube.Kubernetes``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh import cli
from mesh.api.load import merge_patch
from mesh.manifests.kube import KubeError, NotServed
from tests.article import ARTICLE_MANIFESTS

COMMANDS = [
    [],
    ["install"],
    ["uninstall"],
    ["namespace"],
    ["namespace", "add"],
    ["namespace", "remove"],
    ["namespace", "list"],
    ["inject"],
    ["validate"],
    ["status"],
    ["version"],
]
ARTICLE_INSTALL = [
    "install",
    "--mesh-name",
    "osm",
    "--osm-namespace",
    "osm-system",
    "--set=osm.enableEgress=false",
    "--set=osm.image.pullPolicy=Always",
]


class FakeKube:
    """An API server in a dict: apply/get/list/patch/delete with the semantics meshctl relies on."""

    def __init__(self, ready_after: int | None = 0, discovery_lag: int = 0):
        self.discovery_lag = discovery_lag  # applies of custom kinds refused after their CRD exists
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.ready_after = ready_after  # polls of the controller Deployment before it is ready; None: never

    @staticmethod
    def _key(api_version: str, kind: str, name: str, namespace: str | None) -> tuple[str, str, str, str]:
        return (api_version, kind, namespace or "", name)

    def add(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[self._key(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))] = obj

    def server_version(self) -> str:
        return "v1.36.0"

    def apply(self, obj: dict[str, Any]) -> str:
        if obj["kind"] == "MeshConfig" and not self.get(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", "meshconfigs.config.openservicemesh.io"
        ):
            raise NotServed("the cluster does not serve MeshConfig")
        if obj["kind"] == "MeshConfig" and self.discovery_lag > 0:
            self.discovery_lag -= 1
            raise NotServed("the cluster does not serve MeshConfig")
        meta = obj["metadata"]
        key = self._key(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        existed = key in self.objects
        stored = dict(obj)
        if obj["kind"] == "CustomResourceDefinition":
            stored["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
        self.objects[key] = stored
        self.calls.append(("apply", f"{obj['kind']}/{meta['name']}"))
        return "configured" if existed else "created"

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        found = self.objects.get(self._key(api_version, kind, name, namespace))
        if found is not None and kind == "Deployment":
            if self.ready_after is not None and self.ready_after <= 0:
                n = found["spec"]["replicas"]
                found["status"] = dict.fromkeys(
                    ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"), n
                )
            elif self.ready_after is not None:
                self.ready_after -= 1
        return found

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        wanted = dict(part.split("=", 1) for part in label_selector.split(",")) if label_selector else {}
        return [
            o
            for (v, k, ns, _), o in self.objects.items()
            if (v, k) == (api_version, kind)
            and (namespace is None or ns == namespace)
            and wanted.items() <= ((o["metadata"].get("labels") or {}).items())
        ]

    def patch_merge(
        self, api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        key = self._key(api_version, kind, name, namespace)
        if key not in self.objects:
            raise KubeError(f"patching {kind} {name}: not found")
        self.objects[key] = merge_patch(self.objects[key], patch)
        self.calls.append(("patch", f"{kind}/{name}"))
        return self.objects[key]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self.calls.append(("delete", f"{kind}/{name}"))
        return self.objects.pop(self._key(api_version, kind, name, namespace), None) is not None


def run(argv: list[str], api: FakeKube | None = None) -> int:
    return cli.main(argv, api_factory=(lambda args: api) if api is not None else None)


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def meshctl(*argv: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a clean environment without any cluster configuration."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "KUBECONFIG"))}
    code = "import sys; from mesh.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        input=stdin,
        env={**clean, **env},
        timeout=60,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "meshctl" for c in COMMANDS])
def test_help_of_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([*command, "--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_article_install_command_dry_run_prints_the_manifests() -> None:
    done = meshctl(*ARTICLE_INSTALL, "--dry-run")
    assert done.returncode == 0, done.stderr
    objects = list(yaml.safe_load_all(done.stdout))
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {
        ("Namespace", "osm-system"),
        ("CustomResourceDefinition", "egresses.policy.openservicemesh.io"),
        ("CustomResourceDefinition", "egressgateways.policy.openservicemesh.io"),
        ("CustomResourceDefinition", "meshconfigs.config.openservicemesh.io"),
        ("CustomResourceDefinition", "httproutegroups.specs.smi-spec.io"),
        ("Deployment", "osm-controller"),
        ("Service", "osm-controller"),
        ("MutatingWebhookConfiguration", "osm-webhook-osm"),
        ("MeshConfig", "osm-mesh-config"),
    } <= names
    meshconfig = next(o for o in objects if o["kind"] == "MeshConfig")
    assert meshconfig["spec"]["traffic"]["enableEgress"] is False
    assert "pullPolicy=Always ignored" in done.stderr


def test_unknown_set_key_fails_cleanly() -> None:
    done = meshctl("install", "--set=osm.enableEgres=true", "--dry-run")
    assert done.returncode == 1
    assert "error: unknown --set key 'osm.enableEgres'; known keys:" in done.stderr
    assert "osm.enableEgress" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_no_cluster_gives_a_clear_message(tmp_path: Path) -> None:
    done = meshctl("namespace", "add", "curl", HOME=str(tmp_path), KUBECONFIG=str(tmp_path / "missing"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: no Kubernetes cluster reachable:")
    assert "Traceback" not in done.stderr


def test_unreachable_api_server_gives_a_clear_message(tmp_path: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "config").write_text(yaml.safe_dump(config))
    done = meshctl("status", KUBECONFIG=str(tmp_path / "config"))
    assert done.returncode == 1
    assert "error: no Kubernetes cluster reachable: https://127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr


def test_namespace_add_labels_the_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeKube()
    api.add(namespace("curl"))
    assert run(["namespace", "add", "curl"], api) == 0
    meta = api.get("v1", "Namespace", "curl")["metadata"]
    assert meta["labels"] == {"openservicemesh.io/monitored-by": "osm"}
    assert meta["annotations"] == {"openservicemesh.io/sidecar-injection": "enabled"}
    assert "Namespace [curl] successfully added to mesh [osm]" in capsys.readouterr().out


def test_namespace_add_with_injection_disabled_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeKube()
    api.add(namespace("egress-gateway"))
    api.add(namespace("curl"))
    assert run(["namespace", "add", "egress-gateway", "--disable-sidecar-injection"], api) == 0
    assert run(["namespace", "add", "curl"], api) == 0
    capsys.readouterr()
    assert run(["namespace", "list"], api) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [["curl", "osm", "enabled"], ["egress-gateway", "osm", "disabled"]]


def test_namespace_errors(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeKube()
    api.add(namespace("taken", {"openservicemesh.io/monitored-by": "other"}))
    assert run(["namespace", "add", "nowhere"], api) == 1
    assert "error: namespace nowhere not found" in capsys.readouterr().err
    assert run(["namespace", "add", "taken"], api) == 1
    assert "already belongs to mesh [other]" in capsys.readouterr().err
    assert run(["namespace", "remove", "taken"], api) == 1
    assert "belongs to mesh [other], not to mesh [osm]" in capsys.readouterr().err
    assert api.calls == []


def test_namespace_remove_drops_label_and_annotation() -> None:
    api = FakeKube()
    api.add(namespace("curl"))
    run(["namespace", "add", "curl"], api)
    assert run(["namespace", "remove", "curl"], api) == 0
    meta = api.get("v1", "Namespace", "curl")["metadata"]
    assert meta["labels"] == {} and meta["annotations"] == {}


def test_install_applies_everything_and_waits_for_the_controller(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeKube(ready_after=1)
    assert run([*ARTICLE_INSTALL, "--timeout", "10"], api) == 0
    applied = [what for op, what in api.calls if op == "apply"]
    assert applied[0] == "Namespace/osm-system"
    assert applied[-1] == "MeshConfig/osm-mesh-config"
    assert "MutatingWebhookConfiguration/osm-webhook-osm" in applied
    out = capsys.readouterr().out
    assert "waiting for osm-system/osm-controller: 0/1 replicas updated" in out
    assert "Mesh [osm] installed" in out
    # running it again is harmless
    assert run([*ARTICLE_INSTALL, "--timeout", "10"], api) == 0
    assert "MeshConfig osm-system/osm-mesh-config configured" in capsys.readouterr().out


def test_install_waits_for_a_new_kind_to_be_served() -> None:
    api = FakeKube(discovery_lag=1)
    assert run(["install", "--timeout", "10"], api) == 0
    assert (
        api.get("config.openservicemesh.io/v1alpha2", "MeshConfig", "osm-mesh-config", "osm-system")
        is not None
    )


def test_install_times_out_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeKube(ready_after=None)
    api.add(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "osm-controller-1",
                "namespace": "osm-system",
                "labels": {"app": "osm-controller"},
            },
            "status": {"containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]},
        }
    )
    assert run(["install", "--timeout", "1"], api) == 1
    err = capsys.readouterr().err
    assert "error: osm-system/osm-controller not ready after 1 s: 0/1 replicas updated" in err
    assert "osm-controller-1: ImagePullBackOff" in err


def test_status_reports_the_mesh(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeKube()
    run(["install", "--set", "osm.enableEgress=true", "--timeout", "5"], api)
    api.add(namespace("curl", {"openservicemesh.io/monitored-by": "osm"}))
    egress = yaml.safe_load(
        "apiVersion: policy.openservicemesh.io/v1alpha1\nkind: Egress\nmetadata: {name: e, namespace: curl}\n"
        "spec: {sources: [{kind: ServiceAccount, name: curl, namespace: curl}],\n"
        "       ports: [{number: 80, protocol: http}]}"
    )
    api.add(egress)
    capsys.readouterr()
    assert run(["status"], api) == 0
    out = capsys.readouterr().out
    assert "controller:      ready" in out
    assert "egress:          permissive (enableEgress: true)" in out
    assert "Egress policies: 1" in out
    assert "namespaces:      curl" in out
    api.add(
        merge_patch(
            egress, {"metadata": {"name": "bad"}, "spec": {"ports": [{"number": 0, "protocol": "http"}]}}
        )
    )
    assert run(["status"], api) == 1
    assert (
        "invalid:         Egress curl/bad: spec.ports[0].number: must be between 1 and 65535"
        in capsys.readouterr().out
    )


def test_uninstall_deletes_the_webhook_first(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeKube()
    run(["install", "--timeout", "0"], api)
    api.calls.clear()
    assert run(["uninstall"], api) == 0
    deleted = [what for op, what in api.calls if op == "delete"]
    assert deleted[0] == "MutatingWebhookConfiguration/osm-webhook-osm"
    assert not any(what.startswith("CustomResourceDefinition") for what in deleted)
    assert run(["uninstall", "--dry-run", "--delete-crds"], None) == 0
    assert (
        "would delete CustomResourceDefinition egresses.policy.openservicemesh.io" in capsys.readouterr().out
    )


def test_uninstall_removes_the_egress_boundary_policies_after_the_controller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Left behind, the boundary's NetworkPolicies would keep meshed namespaces shut (docs/boundary.md)."""
    api = FakeKube()
    run(["install", "--timeout", "0"], api)

    def policy(ns: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
        meta = {"name": name, "namespace": ns, "labels": labels}
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta}

    api.add(policy("curl", "egress-mesh-boundary", {"egress-mesh.io/boundary": "osm"}))
    api.add(policy("shop", "egress-mesh-boundary", {"egress-mesh.io/boundary": "edge"}))  # another mesh's
    api.add(policy("curl", "deny-all", {}))  # the user's own
    api.calls.clear()
    assert run(["uninstall"], api) == 0
    deleted = [what for op, what in api.calls if op == "delete"]
    assert deleted.index("NetworkPolicy/egress-mesh-boundary") > deleted.index("Deployment/osm-controller")
    left = sorted(
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in api.list("networking.k8s.io/v1", "NetworkPolicy")
    )
    assert left == [("curl", "deny-all"), ("shop", "egress-mesh-boundary")]
    assert "NetworkPolicy curl/egress-mesh-boundary deleted" in capsys.readouterr().out
    assert run(["uninstall", "--dry-run"], None) == 0
    assert "would delete every NetworkPolicy labelled egress-mesh.io/boundary=osm" in capsys.readouterr().out


def test_validate_accepts_the_article_and_reports_problems(tmp_path: Path) -> None:
    good = tmp_path / "article.yaml"
    good.write_text(ARTICLE_MANIFESTS)
    done = meshctl("validate", "-f", str(good))
    assert done.returncode == 0, done.stderr
    assert "2 object(s) valid (2 mesh object(s) checked" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(ARTICLE_MANIFESTS.replace("protocol: http", "protocol: udp"))
    done = meshctl("validate", "-f", str(good), str(bad))
    assert done.returncode == 1
    assert (
        f"{bad}: document 1 (line 1): Egress curl/httpbin-80: spec.ports[0].protocol: "
        "must be one of http, https, tcp (got 'udp')" in done.stderr
    )
    assert "Traceback" not in done.stderr
    done = meshctl("validate", "-f", "-", stdin="kind: [oops\n")
    assert done.returncode == 1 and "error: <stdin>: line 2, column 1: invalid YAML" in done.stderr
    done = meshctl("validate", "-f", str(tmp_path / "missing.yaml"))
    assert done.returncode == 1 and "missing.yaml: no such file" in done.stderr


def test_inject_rewrites_workloads_only(tmp_path: Path) -> None:
    pytest.importorskip("mesh.controller.injector")
    manifest = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: curl, namespace: curl}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: curl}
spec:
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      serviceAccountName: curl
      containers:
      - {name: curl, image: egress-mesh/curl, command: [sleep, infinity]}
"""
    argv = ["inject", "-f", "-", "--proxy-image", "egress-mesh/proxy:t1", "--image-pull-policy", "Never"]
    done = meshctl(*argv, stdin=manifest)
    assert done.returncode == 0, done.stderr
    account, deployment = yaml.safe_load_all(done.stdout)
    assert account == yaml.safe_load(manifest.split("---")[0])
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["curl"]
    assert [c["name"] for c in pod["initContainers"]] == ["osm-init", "sidecar"]
    sidecar = pod["initContainers"][1]
    assert sidecar["image"] == "egress-mesh/proxy:t1" and sidecar["restartPolicy"] == "Always"
    assert [c["imagePullPolicy"] for c in pod["initContainers"]] == ["Never", "Never"]
    sidecar_command = " ".join(sidecar.get("command", []) + sidecar.get("args", []))
    assert "http://osm-controller.osm-system.svc.cluster.local:15128" in sidecar_command


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["version"]) == 0
    assert capsys.readouterr().out.startswith("meshctl version ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["install", "--mesh-name", "Bad Name", "--dry-run"],
            "argument --mesh-name: must be lower-case letters",
        ),
        (
            ["install", "--osm-namespace", "osm_x", "--dry-run"],
            "argument --osm-namespace: must be lower-case",
        ),
        (
            ["install", "--timeout", "soon", "--dry-run"],
            "argument --timeout: expected a number of seconds >= 0",
        ),
        (
            ["inject", "-f", "-", "--exclude-ports", "80,x"],
            "argument --exclude-ports: 'x' is not a port number",
        ),
        (
            ["inject", "-f", "-", "--exclude-ip-ranges", "10.0.0.0/8,example.com"],
            "argument --exclude-ip-ranges: 'example.com' is not an IP address range",
        ),
    ],
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == 2
    assert message in capsys.readouterr().err


def test_validate_checks_built_in_kinds_against_a_kubernetes_version(tmp_path: Path) -> None:
    manifest = tmp_path / "curl.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: curl, namespace: curl}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: curl, namespace: curl}\n"
        "spec: {ports: [{port: 80, targetPrt: 8080}]}\n"
    )
    assert meshctl("validate", "-f", str(manifest)).returncode == 0  # without a version: basic checks only
    done = meshctl("validate", "-f", str(manifest), "--kubernetes-version", "1.36")
    assert done.returncode == 1
    assert f"{manifest}: document 2 (line 5): Service curl/curl: spec.ports[0]: " in done.stderr
    assert "'targetPrt' was unexpected" in done.stderr
    done = meshctl("validate", "-f", str(manifest), "--kubernetes-version", "0.1")
    assert (
        done.returncode == 1
        and "error: --kubernetes-version 0.1: not supported; known versions: 1." in done.stderr
    )


ROLLOUTS = [
    (
        {"generation": 2},
        {"observedGeneration": 1, "updatedReplicas": 1},
        "waiting for the new spec to be observed",
    ),
    (
        {},
        {"replicas": 2, "updatedReplicas": 1, "availableReplicas": 2},
        "1 old replica(s) pending termination",
    ),
    ({}, {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 0}, "0/1 replicas ready"),
    (
        {"generation": 3},
        {"observedGeneration": 3, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
        None,
    ),
]


@pytest.mark.parametrize(("metadata", "status", "expected"), ROLLOUTS)
def test_rollout_is_complete_only_when_kubectl_would_say_so(
    metadata: dict[str, Any], status: dict[str, Any], expected: str | None
) -> None:
    deployment = {"metadata": metadata, "spec": {"replicas": 1}, "status": status}
    assert cli._rollout_pending(deployment) == expected


BOUNDARY_MANIFESTS = """\
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config, namespace: osm-system}
spec: {traffic: {enableEgress: false, enableEgressBoundary: true}}
---
apiVersion: v1
kind: Namespace
metadata: {name: curl, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: egress-gateway
  labels: {openservicemesh.io/monitored-by: osm}
  annotations: {openservicemesh.io/sidecar-injection: disabled}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: curl}
spec:
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      initContainers: [{name: setup, image: busybox, securityContext: {capabilities: {drop: [ALL]}}}]
      containers: [{name: curl, image: egress-mesh/curl}]
---
apiVersion: v1
kind: Pod
metadata: {name: hardened, namespace: curl}
spec:
  containers: [{name: app, image: app, securityContext: {capabilities: {drop: [SETUID, CAP_SETGID]}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: asked, namespace: curl, annotations: {openservicemesh.io/drop-setuid-capabilities: "true"}}
spec:
  containers: [{name: app, image: app}]
---
apiVersion: v1
kind: Pod
metadata: {name: gateway, namespace: egress-gateway}
spec:
  containers: [{name: gateway, image: egress-mesh/gateway}]
---
apiVersion: v1
kind: Pod
metadata: {name: outside, namespace: elsewhere}
spec:
  containers: [{name: app, image: app}]
"""


def test_validate_warns_about_pods_that_can_become_the_sidecar_uid_under_the_boundary(tmp_path: Path) -> None:
    manifests = tmp_path / "boundary.yaml"
    manifests.write_text(BOUNDARY_MANIFESTS)
    done = meshctl("validate", "-f", str(manifests))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: Deployment curl/curl: container(s) curl keep CAP_SETUID/CAP_SETGID in namespace curl while "
        "the egress boundary is on: as UID 1500 they bypass the sidecar (annotate the pod or namespace "
        'openservicemesh.io/drop-setuid-capabilities: "true", or drop SETUID and SETGID in '
        "securityContext.capabilities)"
    ]
    manifests.write_text(
        BOUNDARY_MANIFESTS.replace("enableEgressBoundary: true", "enableEgressBoundary: false")
    )
    done = meshctl("validate", "-f", str(manifests))
    assert done.returncode == 0 and "warning:" not in done.stderr
