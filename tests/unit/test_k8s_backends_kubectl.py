"""Every kubectl command line the backends build is accepted by the real kubectl.

kubectl parses flags before it connects, so against a kubeconfig whose server refuses
connections (127.0.0.1:1) a bad flag shows as "unknown flag" and a good command as a
connection error. Skipped when kubectl is not installed.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

from scenarios.clusters import commands, coredns

pytestmark = pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: refused, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: nobody, user: {token: x}}]
contexts: [{name: refused, context: {cluster: refused, user: nobody}}]
current-context: refused
"""

PROBE = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"
COMMANDS = {
    "exec": commands.exec_argv("curl-1", "curl", "curl", ["curl", "-sI", "http://httpbin.org:80/get"]),
    "logs": commands.logs_argv("gw-1", "egress-gateway", "gateway", tail=20),
    "apply": commands.apply_argv("curl"),
    "delete": commands.delete_argv("egress", "httpbin-80", "curl"),
    "patch": commands.patch_argv("meshconfig", "osm-mesh-config", "osm-system", {"spec": {"traffic": {}}}),
    "get-pods": commands.get_pods_argv("curl", "app=curl"),
    "wait": shlex.split(commands.wait_display("curl", "app=curl", 120)),
    "coredns-patch": coredns.configmap_patch_argv(".:53 {\n}\n"),
    "coredns-restart": coredns.restart_argv(),
    "coredns-status": coredns.rollout_status_argv(),
    "coredns-custom-patch": coredns.custom_patch_argv("rewrite name exact a b\n"),
    "coredns-custom-unset": coredns.custom_patch_argv(None),
    "coredns-custom-create": coredns.custom_create_argv(),
    "coredns-custom-delete": coredns.custom_delete_argv(),
    **{
        f"reset-{i}": argv
        for i, argv in enumerate(
            commands.reset_argvs(["curl", "egress-gateway"], "osm-system", {"traffic": {}})
        )
    },
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_kubectl_accepts_the_command(name, tmp_path):
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    argv = COMMANDS[name]
    assert argv[0] == "kubectl"
    proc = subprocess.run(
        argv,
        input=coredns.custom_configmap({"a": "b"})
        if name.endswith("create")
        else PROBE
        if name == "apply"
        else "",
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "KUBECONFIG": str(config), "HOME": str(tmp_path)},
    )
    assert "unknown flag" not in proc.stderr and "unknown shorthand" not in proc.stderr, proc.stderr
    assert "error: unknown command" not in proc.stderr, proc.stderr
    assert "127.0.0.1:1" in proc.stderr, f"kubectl stopped before connecting: {proc.stderr}"


def test_a_bad_flag_is_noticed(tmp_path):
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    proc = subprocess.run(
        ["kubectl", "get", "pods", "--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "KUBECONFIG": str(config), "HOME": str(tmp_path)},
    )
    assert "unknown flag" in proc.stderr
