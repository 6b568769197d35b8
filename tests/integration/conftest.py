"""Fixtures for the network-namespace integration tests (see netns.py).

``mesh_netns``: the pod/world namespaces with the stand-in servers for httpbin.org and
httpstat.us running in the world (HTTP 80, HTTPS 443, TCP echo 7, on both world addresses) and
the real interception rules (``mesh-proxy init``) installed in the pod.
``sidecar``: starts ``mesh-proxy run`` as UID 1500 in the pod with a config file.
``gateway``: starts ``mesh-gateway run`` on the world address, port 1080.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import pytest

from mesh.api.proxyconfig import ProxyConfig
from tests.integration import netns
from tests.integration.netns import OTHER_IP, PROXY_UID, REPO, WORLD_IP, Process, Topology, wait_until

STANDIN = REPO / "mesh" / "images" / "standin" / "standin.py"


@pytest.fixture(scope="session")
def mesh_netns() -> Iterator[Topology]:
    reason = netns.missing_requirement()
    if reason:
        pytest.skip(reason)
    if not STANDIN.exists():
        pytest.skip(f"stand-in server {STANDIN.relative_to(REPO)} is missing")
    with Topology() as topo:
        for name, address in (("standin-world", WORLD_IP), ("standin-other", OTHER_IP)):
            server = topo.spawn(topo.world, [sys.executable, str(STANDIN), "--host", address], name)
            wait_until(lambda s=server: "listening" in s.output() or not s.alive(), what=f"{name} to listen")
            assert server.alive(), server.output()
        try:
            import mesh.proxy.init  # noqa: F401
        except ImportError:
            pytest.skip("mesh.proxy.init (mesh-proxy init) does not exist yet")
        init = topo.pod.run(sys.executable, "-m", "mesh.proxy", "init", "--proxy-uid", str(PROXY_UID))
        assert init.returncode == 0, init.stderr.decode() + init.stdout.decode()
        yield topo


class SidecarProcess:
    def __init__(self, topo: Topology, config: ProxyConfig, extra: list[str]):
        self.topo = topo
        self.config_file = topo.tmp / f"proxyconfig-{os.urandom(4).hex()}.json"
        self._write(config)
        argv = [sys.executable, "-m", "mesh.proxy", "run", "--config-file", str(self.config_file), *extra]
        self.process: Process = topo.spawn(topo.pod, argv, self.config_file.stem, uid=PROXY_UID)
        self._wait_applied(config)

    def _write(self, config: ProxyConfig) -> None:
        staging = self.config_file.with_suffix(".tmp")
        staging.write_text(config.with_version().to_json())
        staging.chmod(0o644)
        staging.replace(self.config_file)

    def _wait_applied(self, config: ProxyConfig) -> None:
        version = config.with_version().version
        expected = "closed" if config.mode.value == "disabled" else "open"

        def applied() -> bool:
            assert self.process.alive(), f"sidecar exited:\n{self.process.output()}"
            records = self.process.records()
            configs = [r for r in records if r.get("event") == "config"]
            listeners = [r["state"] for r in records if r.get("event") == "listener"] or ["closed"]
            return bool(configs) and configs[-1]["version"] == version and listeners[-1] == expected

        wait_until(applied, timeout=15, what=f"the sidecar to apply config {version}")

    def set(self, config: ProxyConfig) -> None:
        """Rewrite the config file and wait until the sidecar has applied it."""
        self._write(config)
        self._wait_applied(config)

    def records(self, event: str = "decision") -> list[dict]:
        return [r for r in self.process.records() if r.get("event") == event]


@pytest.fixture
def sidecar(mesh_netns: Topology) -> Iterator[Callable[..., SidecarProcess]]:
    started: list[SidecarProcess] = []

    def start(config: ProxyConfig, *extra: str) -> SidecarProcess:
        proc = SidecarProcess(mesh_netns, config, list(extra))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.process.stop()
        mesh_netns.processes.remove(proc.process)


@pytest.fixture
def gateway(mesh_netns: Topology) -> Iterator[Process]:
    try:
        import mesh.gateway.__main__  # noqa: F401
    except ImportError:
        pytest.skip("mesh-gateway run (mesh.gateway.__main__) does not exist yet")
    argv = [sys.executable, "-m", "mesh.gateway", "run", "--host", WORLD_IP, "--port", "1080"]
    process = mesh_netns.spawn(mesh_netns.world, argv, f"gateway-{os.urandom(4).hex()}")
    wait_until(lambda: "listening" in process.output() or not process.alive(), what="the gateway to listen")
    assert process.alive(), process.output()
    yield process
    process.stop()
    mesh_netns.processes.remove(process)
