"""The Kubernetes backends driving stand-in ``kubectl``/``kind``/``k3d`` programs on PATH.

The stand-ins record every invocation (argv, stdin, KUBECONFIG), so these tests observe what a
real cluster would receive: manifests on stdin (never through ``echo``), the kubeconfig, the
CoreDNS edits. kind/k3d/k3s command lines: tests/unit/test_k8s_cluster_tools.py.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from scenarios.clusters import coredns
from scenarios.clusters import kubernetes as k8s
from scenarios.clusters.base import BackendOptions

FAKE = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys
    from pathlib import Path
    state = Path(os.environ["FAKE_STATE"])
    prog, args = Path(sys.argv[0]).name, sys.argv[1:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    with open(state / "calls.jsonl", "a") as log:
        log.write(json.dumps({{"prog": prog, "args": args, "stdin": stdin,
                               "kubeconfig": os.environ.get("KUBECONFIG")}}) + "\\n")
    if prog == "kubectl":
        if any(a.startswith("--raw=/readyz") for a in args):
            print("readyz check passed")
        elif args[:2] == ["get", "pods"]:
            print((state / "pods.json").read_text())
        elif args[:1] == ["get"]:
            canned = state / f"get-{{args[1]}}.json"
            print(canned.read_text() if canned.exists() else json.dumps({{"items": []}}))
        elif args[:1] == ["logs"]:
            print("starting")
            print("fatal: no ProxyConfig for curl/curl")
        elif args[:1] == ["exec"]:
            print("command terminated with exit code 7", file=sys.stderr)
            sys.exit(7)
    """
)


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for prog in ("kubectl",):
        path = bindir / prog
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "state"
    state.mkdir()
    (state / "pods.json").write_text(json.dumps({"items": []}))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STATE", str(state))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def calls(prog: str | None = None) -> list[dict]:
        lines = (state / "calls.jsonl").read_text().splitlines() if (state / "calls.jsonl").exists() else []
        return [c for c in map(json.loads, lines) if prog is None or c["prog"] == prog]

    calls.state = state  # type: ignore[attr-defined]
    return calls


def _pods(*pods):
    return json.dumps({"items": list(pods)})


def _pod(name, ready, waiting=None):
    return {
        "metadata": {"name": name},
        "status": {
            "phase": "Running" if ready else "Pending",
            "podIP": "10.42.0.17",
            "conditions": [{"type": "Ready", "status": str(ready)}],
            "containerStatuses": [
                {
                    "name": "curl",
                    "ready": ready,
                    "state": {"waiting": waiting} if waiting else {"running": {}},
                }
            ],
        },
    }


def _cluster(tmp_path) -> k8s.KubernetesCluster:
    cluster = k8s.KubernetesCluster(BackendOptions())
    cluster.kubeconfig = str(tmp_path / "kubeconfig")
    return cluster


def test_apply_sends_the_manifest_on_stdin_with_the_kubeconfig(fakes, tmp_path):
    manifest = (
        'kind: ConfigMap\napiVersion: v1\nmetadata: {name: q}\ndata: {text: "it\'s \\"quoted\\" $HOME"}\n'
    )
    result = _cluster(tmp_path).apply(manifest, "curl")
    assert result.ok and result.command.startswith("kubectl apply -n curl -f - <<EOF\n")
    [call] = fakes("kubectl")
    assert call["args"] == ["apply", "-n", "curl", "-f", "-"]
    assert call["stdin"] == manifest
    assert call["kubeconfig"] == str(tmp_path / "kubeconfig")


def test_exec_runs_in_the_ready_pod_and_reports_curls_exit_code(fakes, tmp_path):
    (fakes.state / "pods.json").write_text(_pods(_pod("curl-old", False), _pod("curl-new", True)))
    result = _cluster(tmp_path).exec("curl", "app=curl", "curl", ["curl", "-sI", "http://httpbin.org:80/get"])
    assert result.exit_code == 7 and "exit code 7" in result.stderr
    assert result.command.startswith('kubectl exec "$(kubectl get pod -n curl -l app=curl')
    assert fakes("kubectl")[-1]["args"] == [
        "exec", "curl-new", "-n", "curl", "-c", "curl", "--", "curl", "-sI", "http://httpbin.org:80/get",
    ]  # fmt: skip
    assert _cluster(tmp_path).pod_ip("curl", "app=curl") == "10.42.0.17"


def test_osm_commands_run_meshctl_but_show_the_article_line(fakes, tmp_path, monkeypatch):
    bindir = Path(os.environ["PATH"].split(os.pathsep)[0])
    meshctl = bindir / "meshctl"
    meshctl.write_text(FAKE.format(python=sys.executable))
    meshctl.chmod(0o755)
    result = _cluster(tmp_path).run(["osm", "namespace", "add", "curl"])
    assert result.ok and result.command == "osm namespace add curl"
    assert fakes("meshctl")[-1]["args"] == ["namespace", "add", "curl"]


def test_wait_ready_timeout_says_what_is_not_ready_and_why(fakes, tmp_path):
    waiting = {"reason": "ImagePullBackOff", "message": "egress-mesh/curl:t not found"}
    (fakes.state / "pods.json").write_text(_pods(_pod("curl-1", False, waiting)))
    with pytest.raises(TimeoutError) as caught:
        _cluster(tmp_path).wait_ready("curl", "app=curl", timeout=1.5)
    message = str(caught.value)
    assert "pods -l app=curl in namespace curl not ready" in message
    assert "ImagePullBackOff egress-mesh/curl:t not found" in message
    assert "last log lines" not in message  # a container that never ran has no log


def test_wait_ready_timeout_shows_the_log_of_a_crashing_container(fakes, tmp_path):
    pod = _pod("curl-2", False, {"reason": "CrashLoopBackOff", "message": "back-off 10s"})
    pod["status"]["containerStatuses"][0]["restartCount"] = 3
    (fakes.state / "pods.json").write_text(_pods(pod))
    with pytest.raises(TimeoutError) as caught:
        _cluster(tmp_path).wait_ready("curl", "app=curl", timeout=1)
    message = str(caught.value)
    assert "container curl waiting: CrashLoopBackOff back-off 10s (restarts: 3)" in message
    assert "last log lines of curl-2/curl" in message and "fatal: no ProxyConfig for curl/curl" in message


def _names(*names):
    return json.dumps({"items": [{"metadata": {"name": n}} for n in names]})


def test_install_deploys_standins_rewrites_coredns_and_installs_with_one_tag(fakes, tmp_path):
    from tests.unit.test_k8s_backends import KIND_COREFILE

    (fakes.state / "pods.json").write_text(_pods(_pod("ready-1", True)))
    (fakes.state / "get-configmap.json").write_text(json.dumps({"data": {"Corefile": KIND_COREFILE}}))
    (fakes.state / "get-meshconfig.json").write_text(
        json.dumps({"spec": {"traffic": {"enableEgress": False}}})
    )
    bindir = Path(os.environ["PATH"].split(os.pathsep)[0])
    (bindir / "meshctl").write_text(FAKE.format(python=sys.executable))
    (bindir / "meshctl").chmod(0o755)
    cluster = _cluster(tmp_path)
    cluster.images = {"standin": "egress-mesh/standin:run-1"}
    cluster.image_tag = "run-1"
    results = cluster.install_mesh(k8s.MeshOptions())
    assert all(r.ok for r in results)
    kubectl = fakes("kubectl")
    [standins] = [c for c in kubectl if c["args"][:1] == ["apply"]]
    assert "image: egress-mesh/standin:run-1" in standins["stdin"]
    [patch] = [c for c in kubectl if c["args"][:3] == ["patch", "configmap", "coredns"]]
    corefile = json.loads(patch["args"][-1])["data"]["Corefile"]
    assert corefile == coredns.add_block(KIND_COREFILE)
    assert ["rollout", "restart", "deployment/coredns", "-n", "kube-system"] in [c["args"] for c in kubectl]
    [install] = fakes("meshctl")
    assert install["args"][:5] == ["install", "--mesh-name", "osm", "--osm-namespace", "osm-system"]
    assert "--set=osm.image.tag=run-1" in install["args"]
    assert install["kubeconfig"] == cluster.kubeconfig


def test_reset_removes_policies_and_sample_namespaces_and_restores_the_meshconfig(fakes, tmp_path):
    cluster = _cluster(tmp_path)
    cluster._baseline_namespaces = {"default", "kube-system", "osm-system", "team-a"}
    cluster._meshconfig_spec = {"traffic": {"enableEgress": False}}
    (fakes.state / "get-namespaces.json").write_text(
        _names("default", "kube-system", "osm-system", "team-a", "curl", "egress-gateway", "extra")
    )
    cluster.reset()
    calls = [c["args"] for c in fakes("kubectl")]
    assert [
        "delete", "egresses.policy.openservicemesh.io", "--all", "--all-namespaces", "--ignore-not-found",
        "--wait=false",
    ] in calls  # fmt: skip
    [deleted] = [c for c in calls if c[:2] == ["delete", "namespace"]]
    assert sorted(a for a in deleted[2:] if not a.startswith("-")) == ["curl", "egress-gateway", "extra"]
    patch = [c for c in calls if c[:2] == ["patch", "meshconfig"]][-1]
    assert json.loads(patch[patch.index("-p") + 1]) == {"spec": {"traffic": {"enableEgress": False}}}
