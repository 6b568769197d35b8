"""Egress ``matches`` end to end in network namespaces: manifests -> mesh-controller -> sidecar -> curl.

An Egress for httpbin.org:80 references the HTTPRouteGroup ``httpbin-get`` (``GET /get`` only).
While the group is missing nothing is allowed and the controller reports why; once it exists,
``/get`` passes and ``/headers`` gets the sidecar's 403 on the same keep-alive connection.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.article import DENIED_BODY, EGRESS_HTTPBIN_80, meshconfig_yaml
from tests.integration.helpers import write_atomically as write
from tests.integration.netns import WORLD_IP, wait_until

pytestmark = pytest.mark.root

EGRESS_WITH_MATCHES = (
    EGRESS_HTTPBIN_80
    + """\
  matches:
  - apiGroup: specs.smi-spec.io/v1alpha4
    kind: HTTPRouteGroup
    name: httpbin-get
"""
)
ROUTE_GROUP = """\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata:
  name: httpbin-get
  namespace: curl
spec:
  matches:
  - name: get
    pathRegex: /get
    methods: ["GET"]
"""


def curl_get_then_headers(topo) -> list[tuple[str, str, str]]:
    """(status, new connections, body start) of GET /get and GET /headers sent by one curl."""
    result = topo.pod.run(
        "curl", "-s", "--max-time", "5", "-w", "\\n@@%{http_code} %{num_connects}@@\\n",
        "http://httpbin.org/get", "http://httpbin.org/headers",
    )  # fmt: skip
    if result.returncode:
        return [("exit", str(result.returncode), "")]
    found = re.findall(r"(.*?)\n@@(\d+) (\d+)@@\n", result.stdout.decode(), re.S)
    return [(status, connects, body.strip()[:13]) for body, status, connects in found]


def controller_status(topo) -> dict:
    # errors are shown to loopback callers: from the controller's namespace, with a loopback source
    url = f"http://{WORLD_IP}:15128/v1/status"
    result = topo.world.run("curl", "-s", "--max-time", "5", "--interface", "127.0.0.1", url)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def test_route_group_restricts_requests_on_one_connection(mesh_netns):
    manifests = mesh_netns.tmp / f"matches-{os.urandom(4).hex()}"
    manifests.mkdir()
    write(manifests / "meshconfig.yaml", meshconfig_yaml(False))
    write(manifests / "egress.yaml", EGRESS_WITH_MATCHES)
    controller, sidecar = mesh_netns.spawn_mesh(manifests)
    try:
        wait_until(
            lambda: any(r.get("event") == "config" and r.get("mode") == "policy" for r in sidecar.records()),
            timeout=15,
            what="a policy config",
        )
        # the group is missing: fail closed, and the controller says why
        assert curl_get_then_headers(mesh_netns) == [("403", "1", DENIED_BODY), ("403", "0", DENIED_BODY)]
        errors = controller_status(mesh_netns).get("errors", [])
        assert any("HTTPRouteGroup curl/httpbin-get does not exist" in e for e in errors), errors

        write(manifests / "routegroup.yaml", ROUTE_GROUP)
        wait_until(
            lambda: curl_get_then_headers(mesh_netns)[0][0] == "200", timeout=15, what="GET /get allowed"
        )
        (get, headers) = curl_get_then_headers(mesh_netns)
        assert get[:2] == ("200", "1") and get[2].startswith("{")
        assert headers == ("403", "0", DENIED_BODY)  # same connection: no new connect
        assert controller_status(mesh_netns).get("errors") == []
        denied = [r for r in sidecar.records() if r.get("event") == "decision" and not r.get("allowed")]
        assert "no HTTPRouteGroup match of Egress curl/httpbin-80 allows GET /headers" in denied[-1]["reason"]
    finally:
        sidecar.stop()
        controller.stop()
    assert "Traceback" not in sidecar.output()
