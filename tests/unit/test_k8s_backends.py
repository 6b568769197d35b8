"""Kubernetes backends without a cluster: the commands they build, the CoreDNS edit, diagnostics."""

from __future__ import annotations

import json

import pytest
import yaml

from scenarios.clusters import commands, coredns, external, k3d, k3s, k3s_container, k8s_images, kind, kubectl
from scenarios.clusters import kubernetes as k8s
from scenarios.clusters import pods as k8s_pods
from scenarios.clusters.base import BackendOptions, BackendUnavailable, MeshOptions

ARTICLE_EXEC = (
    "kubectl exec \"$(kubectl get pod -n curl -l app=curl -o jsonpath='{.items..metadata.name}')\" "
    "-n curl -c curl -- curl -sI http://httpbin.org:80/get http://httpstat.us/200"
)
ARTICLE_PATCH = (
    "kubectl patch meshconfig osm-mesh-config -n osm-system "
    """-p '{"spec":{"traffic":{"enableEgress":true}}}' --type=merge"""
)
ARTICLE_LOGS = (
    "kubectl logs -n egress-gateway "
    '"$(kubectl get pod -n egress-gateway -l app=global-egress-gateway '
    "-o jsonpath='{.items..metadata.name}')\""
)

KIND_COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""
K3S_COREFILE = """.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    hosts /etc/coredns/NodeHosts {
      ttl 60
      reload 15s
      fallthrough
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import /etc/coredns/custom/*.override
}
import /etc/coredns/custom/*.server
"""


# ---- kubectl lines as the article writes them -----------------------------------------------------
def test_exec_is_shown_exactly_as_in_the_article_and_runs_on_the_resolved_pod():
    urls = ["curl", "-sI", "http://httpbin.org:80/get", "http://httpstat.us/200"]
    assert commands.exec_display("curl", "app=curl", "curl", urls) == ARTICLE_EXEC
    assert commands.exec_argv("curl-5d8f", "curl", "curl", urls) == [
        "kubectl", "exec", "curl-5d8f", "-n", "curl", "-c", "curl", "--", *urls,
    ]  # fmt: skip


def test_patch_and_logs_lines_match_the_article():
    argv = commands.patch_argv(
        "meshconfig", "osm-mesh-config", "osm-system", {"spec": {"traffic": {"enableEgress": True}}}
    )
    assert k8s.join(argv) == ARTICLE_PATCH
    assert commands.logs_display("egress-gateway", "app=global-egress-gateway") == ARTICLE_LOGS
    assert commands.logs_argv("gw-1", "egress-gateway", tail=20) == [
        "kubectl", "logs", "-n", "egress-gateway", "gw-1", "--tail=20",
    ]  # fmt: skip


def test_apply_goes_to_stdin_and_is_shown_as_a_heredoc():
    manifest = "kind: Egress\napiVersion: policy.openservicemesh.io/v1alpha1\n"
    assert commands.apply_argv() == ["kubectl", "apply", "-f", "-"]
    assert commands.apply_argv("curl") == ["kubectl", "apply", "-n", "curl", "-f", "-"]
    assert commands.apply_display(manifest) == f"kubectl apply -f - <<EOF\n{manifest}EOF"
    assert commands.delete_argv("egress", "httpbin-80", "curl") == [
        "kubectl",
        "delete",
        "egress",
        "httpbin-80",
        "-n",
        "curl",
    ]


def test_install_uses_the_article_options_and_the_loaded_images():
    argv = commands.install_argv(MeshOptions(), "egress-mesh", "run-0123456789ab", "IfNotPresent")
    assert argv == [
        "meshctl", "install", "--mesh-name", "osm", "--osm-namespace", "osm-system",
        "--set=osm.enableEgress=false", "--set=osm.image.registry=egress-mesh",
        "--set=osm.image.tag=run-0123456789ab", "--set=osm.image.pullPolicy=IfNotPresent",
    ]  # fmt: skip
    extra = commands.install_argv(
        MeshOptions(enable_egress=True, extra_set={"osm.x": "1"}), "r", "t", "Always"
    )
    assert "--set=osm.enableEgress=true" in extra and extra[-1] == "--set=osm.x=1"
    assert commands.map_osm_argv(["osm", "namespace", "add", "curl"]) == [
        "meshctl",
        "namespace",
        "add",
        "curl",
    ]
    assert commands.uninstall_argv(MeshOptions())[:2] == ["meshctl", "uninstall"]


def test_one_run_tag_for_all_images_and_retag_plan():
    refs = ["egress-mesh/proxy:aaa", "egress-mesh/controller:bbb"]
    tag = k8s_images.combined_tag(refs)
    assert tag == k8s_images.combined_tag(list(reversed(refs))) and tag.startswith("run-")
    assert tag != k8s_images.combined_tag(["egress-mesh/proxy:aaa", "egress-mesh/controller:ccc"])
    assert k8s_images.retag_plan(refs, "reg.example:5000/mesh/", "t1") == {
        "egress-mesh/proxy:aaa": "reg.example:5000/mesh/proxy:t1",
        "egress-mesh/controller:bbb": "reg.example:5000/mesh/controller:t1",
    }


def test_image_substitution_only_touches_egress_mesh_images():
    manifest = """apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: curl}
spec:
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      initContainers: [{name: setup, image: busybox}]
      containers:
        - {name: curl, image: egress-mesh/curl, imagePullPolicy: Never}
"""
    out = yaml.safe_load(k8s_images.substitute_images(manifest, {"curl": "reg/curl:t1"}, "Always"))
    containers = out["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "reg/curl:t1" and containers[0]["imagePullPolicy"] == "Always"
    assert out["spec"]["template"]["spec"]["initContainers"][0]["image"] == "busybox"
    egress = "kind: Egress\nmetadata:\n  name: httpbin-80\n"
    assert k8s_images.substitute_images(egress, {"curl": "x"}) == egress


def test_apply_target_recognises_local_files_only(tmp_path):
    path = tmp_path / "curl.yaml"
    path.write_text("kind: Namespace\n")
    assert kubectl.apply_target(["kubectl", "apply", "-n", "curl", "-f", str(path)]) == (str(path), "curl")
    assert kubectl.apply_target(["kubectl", "apply", "-f", "https://example.invalid/x.yaml"]) is None
    assert kubectl.apply_target(["kubectl", "apply", "-f", str(path), "--server-side"]) is None
    assert kubectl.apply_target(["kubectl", "create", "namespace", "curl"]) is None


# ---- per-backend image loading ------------------------------------------------------------------
def test_image_loading_commands():
    assert kind.load_archive_argv("/t/images.tar", "egress-mesh") == [
        "kind", "load", "image-archive", "/t/images.tar", "--name", "egress-mesh",
    ]  # fmt: skip
    assert k3d.import_argv("/t/images.tar", "egress-mesh") == [
        "k3d", "image", "import", "/t/images.tar", "--cluster", "egress-mesh",
    ]  # fmt: skip
    assert k3s.import_argv("/t/i.tar") == ["k3s", "ctr", "-n", "k8s.io", "images", "import", "/t/i.tar"]
    assert k3s.import_argv("/t/i.tar", as_root=False)[:2] == ["sudo", "-n"]
    assert k3s_container.copy_argv("/t/i.tar", "egress-mesh-k3s") == [
        "docker", "cp", "/t/i.tar", "egress-mesh-k3s:/tmp/egress-mesh-images.tar",
    ]  # fmt: skip
    assert k3s_container.import_argv("egress-mesh-k3s") == [
        "docker", "exec", "egress-mesh-k3s", "ctr", "-n", "k8s.io", "images", "import",
        "/tmp/egress-mesh-images.tar",
    ]  # fmt: skip
    assert external.push_argv("reg:5000/proxy:t") == ["docker", "push", "reg:5000/proxy:t"]


def test_versions_map_to_pinned_node_images():
    assert kind.node_image("v1.37.0") == f"kindest/node:v{kind.KIND_NODE_IMAGES['1.37']}"
    assert kind.node_image("1.36").startswith("kindest/node:v1.36.4@sha256:")
    assert kind.node_image(None).startswith("kindest/node:v1.37.0@sha256:")
    assert kind.node_image("v1.31.0") == "kindest/node:v1.31.0"  # not pinned: used as given
    assert k3d.k3s_image("v1.35") == "rancher/k3s:v1.35.5-k3s1"
    assert k3d.k3s_image("1.31.0") == "rancher/k3s:v1.31.0-k3s1"  # not pinned: the first k3s build
    assert k3d.k3s_image("v1.31.0+k3s2") == "rancher/k3s:v1.31.0-k3s2"
    with pytest.raises(ValueError, match="not a Kubernetes version"):
        kind.node_image("latest")


# ---- CoreDNS -----------------------------------------------------------------------------------
@pytest.mark.parametrize("corefile", [KIND_COREFILE, K3S_COREFILE], ids=["kind", "k3s"])
def test_corefile_rewrite_is_idempotent_and_reversible(corefile):
    added = coredns.add_block(corefile)
    assert "    rewrite name exact httpbin.org httpbin.external-services.svc.cluster.local\n" in added
    assert "    rewrite name exact httpstat.us httpstat.external-services.svc.cluster.local\n" in added
    assert added.index("rewrite name") > added.index(".:53 {")
    assert coredns.add_block(added) == added
    assert coredns.remove_block(added) == corefile
    assert coredns.remove_block(corefile) == corefile


def test_corefile_rewrite_follows_the_cluster_domain_and_refuses_odd_files():
    custom = KIND_COREFILE.replace("cluster.local", "corp.internal")
    assert "httpbin.external-services.svc.corp.internal" in coredns.add_block(custom)
    with pytest.raises(ValueError, match="root server block"):
        coredns.add_block("example.org:53 {\n    whoami\n}\n")


def test_coredns_patch_commands_carry_the_corefile():
    argv = coredns.configmap_patch_argv("X\n")
    assert argv[:7] == ["kubectl", "patch", "configmap", "coredns", "-n", "kube-system", "--type=merge"]
    assert json.loads(argv[-1]) == {"data": {"Corefile": "X\n"}}
    assert coredns.restart_argv() == [
        "kubectl",
        "rollout",
        "restart",
        "deployment/coredns",
        "-n",
        "kube-system",
    ]


# ---- readiness diagnosis ------------------------------------------------------------------------
def _pod(name, ready=False, deleting=False, waiting=None, ip="10.42.0.9"):
    status = {
        "phase": "Running" if ready else "Pending",
        "podIP": ip,
        "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "reason": "ContainersNotReady"}
        ],
        "containerStatuses": [
            {
                "name": "curl",
                "ready": ready,
                "restartCount": 0,
                "state": {"waiting": waiting} if waiting else {},
            }
        ],
    }
    meta = {"name": name, **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    return {"metadata": meta, "status": status}


def test_not_ready_report_names_the_reason_events_and_logs():
    pods = [_pod("curl-1", waiting={"reason": "ImagePullBackOff", "message": "pull access denied"})]
    events = [
        {
            "type": "Warning",
            "reason": "Failed",
            "message": 'Failed to pull image "egress-mesh/curl:t"',
            "involvedObject": {"kind": "Pod", "name": "curl-1"},
        }
    ]
    text = k8s_pods.describe_not_ready(
        "curl", "app=curl", pods, events, {("curl-1", "sidecar"): "a\nconfig refused\n"}
    )
    assert "pod curl-1: phase Pending" in text
    assert "container curl waiting: ImagePullBackOff pull access denied" in text
    assert 'Pod/curl-1: Failed: Failed to pull image "egress-mesh/curl:t"' in text
    assert "last log lines of curl-1/sidecar" in text and "config refused" in text
    empty = k8s_pods.describe_not_ready("curl", "app=curl", [], [], {})
    assert "no pod exists" in empty


def test_pick_pod_skips_terminating_pods_and_prefers_ready_ones():
    pods = [_pod("a", ready=True, deleting=True), _pod("b"), _pod("c", ready=True)]
    assert k8s_pods.pick_pod(pods)["metadata"]["name"] == "c"
    assert k8s_pods.pick_pod([_pod("a", deleting=True)]) is None


# ---- backends that cannot run here say why -------------------------------------------------------
def test_external_needs_a_registry_and_k3s_a_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(BackendUnavailable, match="registry"):
        external.ExternalCluster(BackendOptions()).up()
    if not (k8s.Path("/etc/rancher/k3s/k3s.yaml")).exists():
        with pytest.raises(BackendUnavailable, match="no kubeconfig found"):
            k3s.K3sCluster(BackendOptions()).up()


def test_capabilities_follow_the_external_services_choice():
    standins = kind.KindCluster(BackendOptions())
    internet = kind.KindCluster(BackendOptions(external="internet"))
    assert {"coredns", "standins", "gateway-log"} <= standins.capabilities
    assert "internet" in internet.capabilities and "standins" not in internet.capabilities


# ---- the meshctl contract -----------------------------------------------------------------------
def _meshctl(argv):
    import subprocess
    import sys

    base = [sys.executable, "-m", "mesh.cli"]
    return subprocess.run([*base, *argv[1:]], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("registry", "policy"), [("egress-mesh", "IfNotPresent"), ("reg.example:5000/em", "Always")]
)
def test_meshctl_renders_the_install_the_backends_ask_for(registry, policy):
    pytest.importorskip("mesh.cli")
    proc = _meshctl(commands.install_argv(MeshOptions(), registry, "run-abc", policy) + ["--dry-run"])
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{registry}/controller:run-abc"
    assert container["imagePullPolicy"] == policy
    assert f"{registry}/proxy:run-abc" in container["args"] + container.get("command", [])
    proc = _meshctl(commands.uninstall_argv(MeshOptions()) + ["--dry-run"])
    assert proc.returncode == 0, proc.stderr


def test_k3s_container_kubeconfig_points_at_the_mapped_port():
    config = "clusters:\n- cluster:\n    server: https://127.0.0.1:6443\n"
    mapped = k3s_container.external_kubeconfig(config, "127.0.0.1", 32768)
    assert "server: https://127.0.0.1:32768\n" in mapped
