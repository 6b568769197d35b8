"""The sidecar in a real pod network namespace, behind the real interception rules, driven by curl."""

from __future__ import annotations

import json
import shutil
import sys
import time

import pytest

from mesh.api.proxyconfig import Endpoint, Identity, Mode, Protocol, ProxyConfig, Rule
from tests.integration.conftest import STANDIN
from tests.integration.netns import OTHER_IP, POD_IP, PROXY_UID, WORLD_IP, Topology, run, wait_until

pytestmark = pytest.mark.root

ID = Identity("curl", "curl")
FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 13\r\nconnection: keep-alive\r\n\r\nAccess denied"
HTTPBIN_80 = Rule(Protocol.HTTP, 80, hosts=("httpbin.org",), egress="curl/httpbin-80")
GATEWAY = Endpoint("global-egress-gateway.test", 1080)


def config(mode: Mode, *rules: Rule, gateway: Endpoint | None = None) -> ProxyConfig:
    return ProxyConfig(ID, mode, rules=rules, gateway=gateway).with_version()


def curl(topo, *args: str):
    return topo.pod.run("curl", "-sS", "--max-time", "5", *args)


def standin_requests(topo, name: str) -> list[dict]:
    log = (topo.tmp / f"{name}.log").read_text()
    return [r for r in map(json.loads, filter(None, log.splitlines())) if "path" in r]


def test_disabled_means_connection_refused(mesh_netns, sidecar):
    sidecar(config(Mode.DISABLED))
    result = curl(mesh_netns, "-I", "http://httpbin.org/get")
    assert result.returncode == 7, result.stderr


def test_listener_opens_and_closes_with_the_config_file(mesh_netns, sidecar):
    proc = sidecar(config(Mode.DISABLED))
    assert curl(mesh_netns, "-I", "http://httpbin.org/get").returncode == 7
    proc.set(config(Mode.PERMISSIVE))
    result = curl(mesh_netns, "-sI", "http://httpbin.org/get", "http://httpstat.us/200")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b"HTTP/1.1 200 OK") == 2
    proc.set(config(Mode.DISABLED))
    assert curl(mesh_netns, "-I", "http://httpstat.us/200").returncode == 7


def test_policy_allows_httpbin_and_answers_httpstat_with_the_exact_403(mesh_netns, sidecar):
    proc = sidecar(config(Mode.POLICY, HTTPBIN_80))
    allowed = curl(mesh_netns, "-i", "http://httpbin.org/get")
    assert allowed.stdout.startswith(b"HTTP/1.1 200 OK\r\n"), allowed.stdout
    assert json.loads(allowed.stdout.split(b"\r\n\r\n", 1)[1])["origin"] == POD_IP
    denied = curl(mesh_netns, "-i", "http://httpstat.us/200")
    assert denied.returncode == 0
    assert denied.stdout == FORBIDDEN
    decisions = [(r["host"], r["decision"], r["protocol"], r["port"]) for r in proc.records()]
    assert decisions == [("httpbin.org", "allow", "http", 80), ("httpstat.us", "deny", "http", 80)]
    assert proc.records()[0]["identity"] == "curl/curl"


def test_denied_request_keeps_the_connection_for_the_next_one(mesh_netns, sidecar):
    sidecar(config(Mode.POLICY, HTTPBIN_80))
    client = f"""
import socket
s = socket.create_connection(("{WORLD_IP}", 80), timeout=5)
s.sendall(b"GET /200 HTTP/1.1\\r\\nHost: httpstat.us\\r\\n\\r\\n")
data = b""
while len(data) < {len(FORBIDDEN)}:
    data += s.recv(4096)
print(repr(data))
s.sendall(b"HEAD /get HTTP/1.1\\r\\nHost: httpbin.org\\r\\n\\r\\n")
print(repr(s.recv(4096).split(b"\\r\\n")[0]))
"""
    result = mesh_netns.pod.python(client)
    first, second = result.stdout.decode().splitlines()
    assert eval(first) == FORBIDDEN
    assert eval(second) == b"HTTP/1.1 200 OK"


def test_spoofed_host_never_reaches_the_dialled_address(mesh_netns, sidecar):
    sidecar(config(Mode.POLICY, HTTPBIN_80))
    before = len(standin_requests(mesh_netns, "standin-other"))
    result = curl(mesh_netns, "-i", "-H", "Host: httpbin.org", f"http://{OTHER_IP}/get?spoof=1")
    assert result.stdout.startswith(b"HTTP/1.1 200 OK"), result.stdout
    assert len(standin_requests(mesh_netns, "standin-other")) == before
    reached = [r for r in standin_requests(mesh_netns, "standin-world") if r["path"] == "/get"]
    assert reached and reached[-1]["host"] == "httpbin.org"


def test_sni_allowed_by_wildcard_and_denied(mesh_netns, sidecar):
    proc = sidecar(config(Mode.POLICY, Rule(Protocol.HTTPS, 443, hosts=("*.httpbin.org",))))
    allowed = curl(mesh_netns, "-k", "-o", "/dev/null", "-w", "%{http_code}", "https://www.httpbin.org/get")
    assert allowed.stdout == b"200", allowed.stderr
    for url in ("https://httpbin.org/get", "https://httpstat.us/200"):  # not strictly below / elsewhere
        denied = curl(mesh_netns, "-k", url)
        assert denied.returncode != 0 and denied.stdout == b""
    assert [(r["host"], r["decision"]) for r in proc.records()] == [
        ("www.httpbin.org", "allow"),
        ("httpbin.org", "deny"),
        ("httpstat.us", "deny"),
    ]


ECHO = """
import socket
s = socket.create_connection(("{ip}", 7), timeout=3)
s.sendall(b"ping")
try:
    print(s.recv(100).decode() or "closed")
except OSError:
    print("closed")
"""


def test_tcp_cidr_allowed_and_denied(mesh_netns, sidecar):
    proc = sidecar(config(Mode.POLICY, Rule(Protocol.TCP, 7, cidrs=(f"{WORLD_IP}/32",))))
    assert mesh_netns.pod.python(ECHO.format(ip=WORLD_IP)).stdout.strip() == b"ping"
    assert mesh_netns.pod.python(ECHO.format(ip=OTHER_IP)).stdout.strip() == b"closed"
    assert [(r["host"], r["decision"]) for r in proc.records()] == [(WORLD_IP, "allow"), (OTHER_IP, "deny")]


def test_permissive_relays_unknown_tcp(mesh_netns, sidecar):
    sidecar(config(Mode.PERMISSIVE))
    assert mesh_netns.pod.python(ECHO.format(ip=OTHER_IP)).stdout.strip() == b"ping"


def test_gateway_policy_logs_allowed_requests_only(mesh_netns, sidecar, gateway):
    sidecar(config(Mode.POLICY, HTTPBIN_80, gateway=GATEWAY))
    result = curl(mesh_netns, "-sI", "http://httpbin.org/get", "http://httpstat.us/200")
    heads = result.stdout.split(b"\r\n\r\n")
    assert heads[0].startswith(b"HTTP/1.1 200 OK")
    assert heads[1] == FORBIDDEN[: FORBIDDEN.index(b"\r\n\r\n")]
    records = wait_until(
        lambda: [r for r in gateway.records() if "request_time" in r], what="a gateway record"
    )
    time.sleep(0.3)  # a wrongly forwarded second request would be logged by now
    records = [r for r in gateway.records() if "request_time" in r]
    assert len(records) == 1
    record = records[0]
    assert list(record)[:7] == [
        "connection_id",
        "request_time",
        "source_address",
        "source_port",
        "host",
        "path",
        "method",
    ]
    assert len(record["connection_id"]) == 16 and int(record["connection_id"], 16) >= 0
    assert record["request_time"].endswith("Z")
    assert record["source_address"] == POD_IP
    assert isinstance(record["source_port"], int)
    assert (record["host"], record["path"], record["method"]) == ("httpbin.org", "/get", "HEAD")


def test_gateway_permissive_logs_both(mesh_netns, sidecar, gateway):
    sidecar(config(Mode.PERMISSIVE, gateway=GATEWAY))
    result = curl(mesh_netns, "-sI", "http://httpbin.org/get", "http://httpstat.us/200")
    assert result.stdout.count(b"HTTP/1.1 200 OK") == 2
    records = wait_until(
        lambda: [r for r in gateway.records() if "request_time" in r][1:] and gateway.records(),
        what="two gateway records",
    )
    hosts = [r["host"] for r in records if "request_time" in r]
    assert hosts == ["httpbin.org", "httpstat.us"]


def test_gateway_down_gives_503_within_the_timeout(mesh_netns, sidecar):
    unreachable = Endpoint("10.77.0.99", 1080)  # no host: the connection attempt just hangs
    sidecar(config(Mode.PERMISSIVE, gateway=unreachable), "--gateway-timeout", "0.5")
    started = time.monotonic()
    result = curl(mesh_netns, "-i", "http://httpbin.org/get")
    elapsed = time.monotonic() - started
    assert result.stdout.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), result.stdout
    assert b"egress gateway unreachable" in result.stdout
    assert 0.5 <= elapsed < 1.5


def test_permissive_sniffs_tls_and_relays_it_unchanged(mesh_netns, sidecar):
    proc = sidecar(config(Mode.PERMISSIVE))
    result = curl(mesh_netns, "-k", "-o", "/dev/null", "-w", "%{http_code}", "https://httpbin.org/get")
    assert result.stdout == b"200", result.stderr
    assert [(r["protocol"], r["host"], r["decision"]) for r in proc.records()] == [
        ("https", "httpbin.org", "allow")
    ]


def test_gateway_tls_tunnel_carries_the_sni_name(mesh_netns, sidecar, gateway):
    rule = Rule(Protocol.HTTPS, 443, hosts=("httpbin.org",))
    sidecar(config(Mode.POLICY, rule, gateway=GATEWAY))
    result = curl(mesh_netns, "-k", "-o", "/dev/null", "-w", "%{http_code}", "https://httpbin.org/get")
    assert result.stdout == b"200", result.stderr
    denied = curl(mesh_netns, "-k", "https://httpstat.us/200")
    assert denied.returncode != 0
    connections = wait_until(
        lambda: [r for r in gateway.records() if "start_time" in r], what="a tunnel record"
    )
    time.sleep(0.3)
    connections = [r for r in gateway.records() if "start_time" in r]
    assert len(connections) == 1
    record = connections[0]
    assert (record["source_address"], record["destination_address"], record["destination_port"]) == (
        POD_IP,
        WORLD_IP,
        443,
    )
    assert record.get("serverNames") == ["httpbin.org"]


def test_ipv6_original_destination(mesh_netns):
    """Own namespaces with IPv6 addresses, rules installed with ``mesh-proxy init --ipv6``."""
    if shutil.which("ip6tables-restore") is None:
        pytest.skip("ip6tables-restore is not installed")
    with Topology() as topo:
        run("ip", "-n", topo.pod.name, "addr", "add", "fd77::1/64", "dev", topo.veth[0], "nodad")
        for address in ("fd77::2/64", "fd77::3/64"):
            run("ip", "-n", topo.world.name, "addr", "add", address, "dev", topo.veth[1], "nodad")
        argv = [sys.executable, str(STANDIN), "--host", "::", "--https-port", "0", "--echo-port", "0"]
        server = topo.spawn(topo.world, argv, "standin-v6")
        wait_until(lambda: "listening" in server.output(), what="the IPv6 stand-in")
        init = topo.pod.run(sys.executable, "-m", "mesh.proxy", "init", "--ipv6")
        assert init.returncode == 0, init.stderr
        config_file = topo.tmp / "v6.json"
        rule = Rule(Protocol.HTTP, 80, cidrs=("fd77::2/128",))
        config_file.write_text(config(Mode.POLICY, rule).to_json())
        argv = [sys.executable, "-m", "mesh.proxy", "run", "--config-file", str(config_file)]
        proxy = topo.spawn(topo.pod, argv, "sidecar-v6", uid=PROXY_UID)
        wait_until(lambda: '"open"' in proxy.output(), what="the sidecar listener")
        allowed = topo.pod.run("curl", "-sS", "-i", "--max-time", "5", "http://[fd77::2]/get")
        assert allowed.stdout.startswith(b"HTTP/1.1 200 OK"), allowed.stderr
        denied = topo.pod.run("curl", "-sS", "-i", "--max-time", "5", "http://[fd77::3]:80/get")
        assert denied.stdout == FORBIDDEN
        decisions = [r for r in proxy.records() if r.get("event") == "decision"]
        assert [(r["destination"], r["decision"]) for r in decisions] == [
            ("[fd77::2]:80", "allow"),
            ("[fd77::3]:80", "deny"),
        ]
