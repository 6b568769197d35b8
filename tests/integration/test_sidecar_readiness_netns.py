"""The injected sidecar's probes, for real: the command the injector writes, run as UID 1500 in a pod
namespace whose interception rules are installed, probed from outside the pod as the kubelet does.

The startup/readiness probe answers 503 while the controller is unreachable (the app containers
would not start yet) and 200 once the first config has been applied.
"""

from __future__ import annotations

import os
import sys

import pytest

from mesh.controller.injector import InjectionSettings, inject_pod
from tests.article import meshconfig_yaml
from tests.integration.helpers import write_atomically as write
from tests.integration.netns import POD_IP, PROXY_UID, WORLD_IP, wait_until

pytestmark = pytest.mark.root
CONTROLLER_PORT = 15131  # not the default: other netns tests run their controller on 15128


def injected_sidecar(controller_url: str) -> dict:
    pod = {"metadata": {"name": "curl", "namespace": "curl"}, "spec": {"containers": [{"name": "curl"}]}}
    injected = inject_pod(pod, InjectionSettings(controller_url=controller_url))
    (sidecar,) = [c for c in injected["spec"]["initContainers"] if c["name"] == "sidecar"]
    return sidecar


def probe(topo, http_get: dict) -> str:
    """What the kubelet sees: an HTTP GET to the pod IP from outside the pod."""
    url = f"http://{POD_IP}:{http_get['port']}{http_get['path']}"
    done = topo.world.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", url)
    return done.stdout.decode() or f"curl exit {done.returncode}"


def test_injected_probes_pass_only_once_the_sidecar_has_a_config(mesh_netns):
    sidecar = injected_sidecar(f"http://{WORLD_IP}:{CONTROLLER_PORT}")
    assert sidecar["startupProbe"]["httpGet"] == sidecar["readinessProbe"]["httpGet"]
    http_get = sidecar["startupProbe"]["httpGet"]
    assert sidecar["command"][0] == "mesh-proxy"
    env = ["env", "POD_NAMESPACE=curl", "POD_NAME=curl", "POD_SERVICE_ACCOUNT=curl"]
    argv = [*env, sys.executable, "-m", "mesh.proxy", *sidecar["command"][1:]]
    proxy = mesh_netns.spawn(mesh_netns.pod, argv, f"ready-sidecar-{os.urandom(4).hex()}", uid=PROXY_UID)
    manifests = mesh_netns.tmp / f"ready-manifests-{os.urandom(4).hex()}"
    manifests.mkdir()
    write(manifests / "meshconfig.yaml", meshconfig_yaml(False))
    try:
        wait_until(lambda: probe(mesh_netns, http_get) == "503", what="the probe to answer 503 (no config)")
        assert proxy.alive(), proxy.output()
        assert not any(r.get("event") == "config" for r in proxy.records())
        argv = [sys.executable, "-m", "mesh.controller", "run", "--source", "directory",
                "--manifests", str(manifests), "--host", WORLD_IP, "--port", str(CONTROLLER_PORT),
                "--webhook-port", "0", "--poll-interval", "0.2"]  # fmt: skip
        mesh_netns.spawn(mesh_netns.world, argv, manifests.name + "-controller")
        wait_until(lambda: probe(mesh_netns, http_get) == "200", timeout=20, what="the probe to answer 200")
        configs = [r for r in proxy.records() if r.get("event") == "config"]
        ready = [r for r in proxy.records() if r.get("event") == "ready"]
        assert configs and ready and ready[0]["version"] == configs[0]["version"]
    finally:
        for process in list(mesh_netns.processes):
            if process is proxy or process.log.name.startswith(manifests.name):
                process.stop()
                mesh_netns.processes.remove(process)
