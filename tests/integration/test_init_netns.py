"""``mesh-proxy init`` for real, as root, in throwaway network namespaces.

Layout: namespace "pod" (where init runs, with a stand-in sidecar on 15001) joined by a veth
pair to namespace "remote" (a destination server). Connections from the pod to the remote are
expected at the stand-in sidecar, except for UID 1500 and excluded destinations.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.root

REQUIRED = ("ip", "iptables", "iptables-save", "iptables-restore", "setpriv")
LISTENER = """
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[2], int(sys.argv[3]))); srv.listen(16)
print("ready", flush=True)
while True:
    conn, _ = srv.accept(); conn.sendall(sys.argv[1].encode()); conn.close()
"""
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
    print(s.recv(100).decode())
"""


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    missing = [b for b in REQUIRED if shutil.which(b) is None]
    if missing:
        return f"missing binaries: {', '.join(missing)}"
    return None


if reason := _skip_reason():
    pytestmark = [pytest.mark.root, pytest.mark.skip(reason=reason)]


@dataclass
class Netns:
    pod: str
    remote: str
    remote_ip: str

    def run(self, *cmd: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", ns or self.pod, *cmd],
            capture_output=True,
            text=True,
            timeout=20,
            check=check,
        )

    def init(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "mesh.proxy.init", *args, check=False)

    def nat_rules(self) -> list[str]:
        saved = self.run("iptables-save", "-t", "nat").stdout
        return [line for line in saved.splitlines() if line.startswith(("-A", ":OSM"))]

    def fetch(self, *, as_uid: int | None = None, port: int = 8080) -> str:
        prefix = ["setpriv", f"--reuid={as_uid}", f"--regid={as_uid}", "--clear-groups"] if as_uid else []
        done = self.run(*prefix, sys.executable, "-c", CLIENT, self.remote_ip, str(port), check=False)
        return done.stdout.strip() or f"failed: {done.stderr.strip()[-200:]}"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[Netns]:
    tag = secrets.token_hex(3)
    pod, remote = f"em-pod-{tag}", f"em-remote-{tag}"
    octet = int(tag[:2], 16)
    pod_ip, remote_ip = f"10.213.{octet}.1", f"10.213.{octet}.2"
    listeners: list[subprocess.Popen] = []
    try:
        _ip("netns", "add", pod)
        _ip("netns", "add", remote)
        _ip("link", "add", f"vp{tag}", "type", "veth", "peer", "name", f"vr{tag}")
        _ip("link", "set", f"vp{tag}", "netns", pod)
        _ip("link", "set", f"vr{tag}", "netns", remote)
        for ns, dev, addr in ((pod, f"vp{tag}", pod_ip), (remote, f"vr{tag}", remote_ip)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        for ns, word, host, port in (
            (remote, "remote", remote_ip, 8080),
            (remote, "remote-9090", remote_ip, 9090),
            (pod, "sidecar", "0.0.0.0", 15001),
        ):
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, word, host, str(port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            listeners.append(proc)
            assert proc.stdout.readline().strip() == "ready"
        yield Netns(pod, remote, remote_ip)
    finally:
        for proc in listeners:
            proc.kill()
            proc.wait()
        for ns in (pod, remote):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_rules_are_installed_once_and_redirect_all_but_the_proxy_uid(netns):
    assert netns.fetch() == "remote"  # before init: straight through

    first = netns.init()
    assert first.returncode == 0, first.stderr
    rules = netns.nat_rules()
    assert "-A OUTPUT -p tcp -j OSM_PROXY_OUTBOUND" in rules
    assert "-A OSM_PROXY_OUT_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules
    assert "-A OSM_PROXY_OUTBOUND -m owner --uid-owner 1500 -j RETURN" in rules

    second = netns.init()
    assert second.returncode == 0, second.stderr
    assert netns.nat_rules() == rules  # idempotent: one copy

    assert netns.fetch() == "sidecar"
    assert netns.fetch(as_uid=1500) == "remote"
    assert netns.fetch(as_uid=1234) == "sidecar"


def test_dry_run_changes_nothing(netns):
    before = netns.run("iptables-save", "-t", "nat").stdout
    done = netns.init("--dry-run")
    assert done.returncode == 0
    assert "-A OUTPUT -p tcp -j OSM_PROXY_OUTBOUND" in done.stdout
    assert netns.nat_rules() == [line for line in before.splitlines() if line.startswith(("-A", ":OSM"))]
    assert netns.fetch() == "remote"


def test_port_exclusion_and_reconfiguration(netns):
    assert netns.init("--exclude-ports", "8080").returncode == 0
    assert netns.fetch(port=8080) == "remote"
    assert netns.fetch(port=9090) == "sidecar"
    # running again with other options replaces the chain content, never duplicates it
    assert netns.init("--exclude-ip-ranges", f"{netns.remote_ip}/32").returncode == 0
    assert netns.fetch(port=9090) == "remote-9090"
    assert sum("OSM_PROXY_OUTBOUND" in r and r.startswith("-A OUTPUT") for r in netns.nat_rules()) == 1
    assert not any("multiport" in r for r in netns.nat_rules())


def test_inclusion_list_redirects_only_listed_ranges(netns):
    assert netns.init("--include-ip-ranges", "192.0.2.0/24").returncode == 0
    assert netns.fetch() == "remote"
    assert netns.init("--include-ip-ranges", f"{netns.remote_ip}/32").returncode == 0
    assert netns.fetch() == "sidecar"


def test_without_net_admin_init_fails_clearly(netns):
    done = netns.run(
        "setpriv",
        "--reuid=1500",
        "--regid=1500",
        "--clear-groups",
        sys.executable,
        "-m",
        "mesh.proxy.init",
        check=False,
    )
    assert done.returncode == 1
    assert "NET_ADMIN" in done.stderr
    assert "Traceback" not in done.stderr
