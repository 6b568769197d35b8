"""The Docker backend's egress boundary for real: containers on two Docker networks, the boundary
compiled from mesh objects as the controller does, enforced with iptables on this host.

A meshed "pod" (curl image) and an unmeshed one sit on the mesh network and the outside network;
a gateway stand-in sits on both; the outside stand-in only on the outside network. Before the
boundary the meshed pod reaches the outside over TCP, UDP and ICMP; with it only the gateway's
port is open to it (refused at once, not timed out), the unmeshed pod is untouched; turning it
off restores everything. Needs root and a Docker engine whose iptables is the host's.
"""

from __future__ import annotations

import copy
import os
import secrets
import subprocess
from collections.abc import Iterator

import pytest
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from scenarios.clusters import docker_firewall as fw
from scenarios.clusters.docker import HARNESS_LABEL, remove_run
from tests.article import global_egress_gateway, meshconfig
from tests.unit.test_boundary import namespace

pytestmark = [pytest.mark.docker, pytest.mark.root]

UDP_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], 7))
s.send(b"ping")
print(s.recv(64).decode())
"""
ICMP_PROBE = """
import os, socket, struct, sys, time
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
ident = os.getpid() & 0xFFFF
packet = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"boundary"
packet = packet[:2] + struct.pack("!H", checksum(packet)) + packet[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(3)
s.sendto(packet, (socket.gethostbyname(sys.argv[1]), 0))
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    reply = s.recvfrom(1024)[0][20:]
    if reply[0] == 0 and struct.unpack("!H", reply[4:6])[0] == ident:
        print("echo reply")
        sys.exit(0)
sys.exit(1)
"""
GATEWAY_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "global-egress-gateway", "namespace": "egress-gateway"},
    "spec": {"ports": [{"port": 1080, "targetPort": 80}], "selector": {"app": "global-egress-gateway"}},
}
ON = [
    meshconfig(False, enableEgressBoundary=True),
    namespace("osm-system", None),
    namespace("curl"),
    namespace("plain", None),
    namespace("egress-gateway", None),
    global_egress_gateway(),
    GATEWAY_SERVICE,
]
OFF = [meshconfig(False), *ON[1:]]


class Lab:
    def __init__(self, client, refs: dict[str, str]) -> None:
        self.client = client
        self.run_id = secrets.token_hex(4)
        self.labels = {HARNESS_LABEL: self.run_id}
        self.firewall = fw.HostFirewall(self.run_id)
        mesh = client.networks.create(f"emfw-{self.run_id}-mesh", driver="bridge", labels=self.labels)
        outside = client.networks.create(f"emfw-{self.run_id}-outside", driver="bridge", labels=self.labels)
        self.pods: list[tuple[fw.Endpoint, str]] = []
        self.curl = self._start(
            "curl", "curl", {"app": "curl"}, refs["curl"], [mesh, outside], ["sleep", "900"]
        )
        self.plain = self._start(
            "plain", "plain", {"app": "plain"}, refs["curl"], [mesh, outside], ["sleep", "900"]
        )
        self.gateway = self._start(
            "egress-gateway", "gw", {"app": "global-egress-gateway"}, refs["standin"], [mesh, outside], None
        )
        self.outside = self._start("outside", "outside", {}, refs["standin"], [outside], None)
        for standin in (self.gateway, self.outside):
            self._wait_listening(standin)
        self.outside_ip = fw.container_addresses(client.api, self.outside)[0]
        self.gateway_ip = fw.container_addresses(client.api, self.gateway)[0]

    def _start(self, ns, name, labels, image, networks, command) -> str:
        container = self.client.containers.run(
            image,
            command,
            name=f"emfw-{self.run_id}-{name}",
            network=networks[0].name,
            labels=self.labels,
            detach=True,
        )
        for network in networks[1:]:
            network.connect(container)
        if ns != "outside":
            addresses = fw.container_addresses(self.client.api, container.name)
            self.pods.append((fw.Endpoint(ns, name, labels, addresses), container.name))
        return container.name

    def _wait_listening(self, container: str) -> None:
        logs = self.client.containers.get(container).logs
        Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.2), retry=retry_if_result(lambda ok: not ok))(
            lambda: b'"event": "listening"' in logs()
        )

    def endpoints(self) -> list[fw.Endpoint]:
        return [endpoint for endpoint, _ in self.pods]

    def enforce(self, objects) -> list[str]:
        return fw.enforce(self.firewall, copy.deepcopy(objects), self.endpoints, "osm", "osm-system")

    def run(self, container: str, *argv: str) -> tuple[int, str]:
        result = self.client.containers.get(container).exec_run(list(argv))
        return result.exit_code, result.output.decode(errors="replace").strip()

    def http(self, container: str, address: str, port: int = 80) -> tuple[int, str]:
        return self.run(
            container,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            f"http://{address}:{port}/200",
        )

    def udp(self, container: str, address: str) -> tuple[int, str]:
        return self.run(container, "python3", "-c", UDP_PROBE, address)

    def icmp(self, container: str, address: str) -> tuple[int, str]:
        return self.run(container, "python3", "-c", ICMP_PROBE, address)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the host firewall needs root")
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no SDK, no socket, engine down: all mean "cannot test here"
        pytest.skip(f"no Docker engine answers: {exc}")
    from scenarios import images

    refs = images.build_all(progress=lambda line: None, names=["curl", "standin"])
    lab = Lab(client, refs)
    try:
        yield lab
    finally:
        fw.remove_chains(lab.run_id)
        remove_run(client, lab.run_id)


def iptables_rules() -> str:
    return subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout


def test_boundary_leaves_the_meshed_pod_only_the_gateway_and_off_restores_it(lab):
    outside = lab.outside_ip
    assert lab.http(lab.curl, outside) == (0, "200")
    assert lab.udp(lab.curl, outside) == (0, "ping")
    assert lab.icmp(lab.curl, outside) == (0, "echo reply")

    actions = lab.enforce(ON)
    assert any(a.startswith("iptables-restore") for a in actions), actions
    assert lab.http(lab.curl, lab.gateway_ip) == (0, "200")  # the gateway's port is open
    code, out = lab.http(lab.curl, outside)
    assert (code, out) == (7, "000")  # refused at once (TCP reset), not a timeout (28)
    assert lab.http(lab.curl, lab.gateway_ip, 7)[0] == 7  # the gateway, but not its port
    assert lab.udp(lab.curl, outside)[0] != 0
    assert lab.icmp(lab.curl, outside)[0] != 0
    assert lab.http(lab.plain, outside) == (0, "200")  # a pod no policy selects: untouched
    assert lab.udp(lab.plain, outside) == (0, "ping")

    assert lab.enforce(ON) == []  # the same boundary again changes nothing
    chain = lab.firewall.chain
    assert iptables_rules().count(f"-j {chain}") == 1

    actions = lab.enforce(OFF)
    assert f"iptables -X {chain}" in actions
    assert chain not in iptables_rules()
    assert lab.http(lab.curl, outside) == (0, "200")
    assert lab.udp(lab.curl, outside) == (0, "ping")
    assert lab.icmp(lab.curl, outside) == (0, "echo reply")


def test_remove_chains_takes_only_this_runs_chain(lab):
    other = fw.HostFirewall(secrets.token_hex(4))
    try:
        lab.enforce(ON)
        other.apply([f"-A {other.chain} -j RETURN"])
        fw.remove_chains(lab.run_id)
        rules = iptables_rules()
        assert lab.firewall.chain not in rules
        assert (
            f'-A DOCKER-USER -m comment --comment "egress-mesh run {other.run_id}" -j {other.chain}' in rules
        )
        assert lab.http(lab.curl, lab.outside_ip) == (0, "200")
    finally:
        other.remove()
    assert other.chain not in iptables_rules()
