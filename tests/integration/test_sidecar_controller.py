"""The article's matrix in network namespaces: manifests -> mesh-controller -> sidecar -> curl.

The controller (directory source) and the gateway run in the world namespace; the sidecar
long-polls the controller with ``--controller`` from the pod namespace.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.article import DENIED_HEAD, EGRESS_GATEWAY, EGRESS_HTTPBIN_80, meshconfig_yaml
from tests.integration.helpers import write_atomically as write
from tests.integration.netns import POD_IP, wait_until

pytestmark = pytest.mark.root

FORBIDDEN_HEAD = DENIED_HEAD.rstrip("\r\n").encode()


def request_records(gateway) -> list[dict]:
    return [r for r in gateway.records() if "request_time" in r]


def settled_count(gateway) -> int:
    """The number of request records once those of earlier responses are in: the gateway writes
    them within about 10 ms of a response (docs/gateway.md)."""
    time.sleep(0.2)
    return len(request_records(gateway))


def curl_both(topo) -> list[bytes]:
    result = topo.pod.run(
        "curl", "-sI", "--max-time", "5", "http://httpbin.org:80/get", "http://httpstat.us/200"
    )
    if result.returncode:
        return [f"exit {result.returncode}".encode()]
    return [
        head.split(b"\r\n")[0] if b"200" in head else head for head in result.stdout.split(b"\r\n\r\n")[:2]
    ]


def test_article_matrix_through_the_controller(mesh_netns, gateway):
    try:
        import mesh.controller.__main__  # noqa: F401
    except ImportError:
        pytest.skip("mesh-controller run does not exist yet")
    manifests = mesh_netns.tmp / f"manifests-{os.urandom(4).hex()}"
    manifests.mkdir()
    write(manifests / "meshconfig.yaml", meshconfig_yaml(False))
    controller, sidecar = mesh_netns.spawn_mesh(manifests)
    try:

        def expect(lines: list[bytes], what: str) -> None:
            wait_until(lambda: curl_both(mesh_netns) == lines, timeout=15, interval=0.3, what=what)

        wait_until(lambda: any(r.get("event") == "config" for r in sidecar.records()), what="a first config")
        assert curl_both(mesh_netns) == [b"exit 7"]  # row 0

        write(manifests / "meshconfig.yaml", meshconfig_yaml(True))
        expect([b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK"], "row 1: passthrough, permissive")

        write(manifests / "meshconfig.yaml", meshconfig_yaml(False))
        write(manifests / "egress.yaml", EGRESS_HTTPBIN_80)
        expect([b"HTTP/1.1 200 OK", FORBIDDEN_HEAD], "row 2: passthrough, policy")
        assert not request_records(gateway)

        write(manifests / "meshconfig.yaml", meshconfig_yaml(True))
        (manifests / "egress.yaml").unlink()
        write(manifests / "gateway.yaml", EGRESS_GATEWAY)
        wait_until(
            lambda: [r.get("gateway") for r in sidecar.records() if r.get("event") == "config"][-1],
            what="a config with the gateway",
        )
        expect([b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK"], "row 3: gateway, permissive")
        before = settled_count(gateway)
        assert curl_both(mesh_netns) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK"]
        wait_until(lambda: len(request_records(gateway)) >= before + 2, what="two gateway records")
        logged = [(r["host"], r["method"], r["source_address"]) for r in request_records(gateway)[before:]]
        assert logged == [("httpbin.org", "HEAD", POD_IP), ("httpstat.us", "HEAD", POD_IP)]

        write(manifests / "meshconfig.yaml", meshconfig_yaml(False))
        write(manifests / "egress.yaml", EGRESS_HTTPBIN_80)
        expect([b"HTTP/1.1 200 OK", FORBIDDEN_HEAD], "row 4: gateway, policy")
        before = settled_count(gateway)
        assert curl_both(mesh_netns) == [b"HTTP/1.1 200 OK", FORBIDDEN_HEAD]
        wait_until(lambda: len(request_records(gateway)) > before, what="a gateway record")
        time.sleep(0.3)  # a wrongly forwarded httpstat.us request would be logged by now
        assert [r["host"] for r in request_records(gateway)[before:]] == ["httpbin.org"]
    finally:
        sidecar.stop()
        controller.stop()
    assert "Traceback" not in sidecar.output()
