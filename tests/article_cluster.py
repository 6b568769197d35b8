"""An in-memory ``Cluster`` that answers like the article's mesh (DESIGN section 1), for the demo,
CLI and pytest-plugin tests: egress off -> exit 7, permissive -> 200, policy -> 403 unless allowed;
with the global EgressGateway every request that leaves is logged by the gateway."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from mesh.api import accesslog
from scenarios.clusters.base import BackendOptions, Cluster, MeshOptions, OpResult
from tests.article import DENIED_BODY, DENIED_HEAD

CURL_POD_IP = "10.42.0.17"


@dataclass
class ArticleCluster(Cluster):
    """Answers like a mesh would: egress off -> exit 7, permissive -> 200, policy -> 403 unless allowed;
    with the global EgressGateway every request that leaves is logged by the gateway."""

    options: BackendOptions = field(default_factory=BackendOptions)
    #: a deliberately broken mesh: policy mode lets everything through
    broken_policy: bool = False
    name: str = "docker"
    capabilities: frozenset[str] = frozenset({"gateway-log"})
    egress: bool = False
    allowed: set[str] = field(default_factory=set)
    gateway: bool = False
    gateway_log: list[str] = field(default_factory=list)
    downs: list[bool] = field(default_factory=list)

    def up(self) -> None: ...

    def down(self, keep: bool = False) -> None:
        self.downs.append(keep)

    def load_images(self, images: Sequence[str]) -> list[OpResult]:
        return []

    def install_mesh(self, options: MeshOptions) -> list[OpResult]:
        return [
            OpResult(
                "meshctl install --mesh-name osm --osm-namespace osm-system --set=osm.enableEgress=false"
            )
        ]

    def reset(self) -> None:
        self.egress, self.gateway = False, False
        self.allowed.clear()

    def apply(self, manifest: str, namespace: str | None = None) -> OpResult:
        for doc in yaml.safe_load_all(manifest):
            if doc and doc.get("kind") == "Egress":
                self.allowed.update(doc["spec"].get("hosts", []))
            if doc and doc.get("kind") == "EgressGateway":
                self.gateway = True
        return OpResult("docker exec egress-mesh-controller tee /manifests/x.yaml", stdout="configured\n")

    def delete(self, kind: str, name: str, namespace: str | None = None) -> OpResult:
        return OpResult(f"fake delete {kind} {name}")

    def patch(self, kind, name, namespace, patch, patch_type="merge") -> OpResult:
        self.egress = patch["spec"]["traffic"]["enableEgress"]
        return OpResult("fake patch", stdout=f"{kind}/{name} patched\n")

    def run(self, argv: Sequence[str]) -> OpResult:
        return OpResult("fake " + " ".join(argv))

    def _answer(self, host: str, path: str, body: bool) -> str:
        if self.egress or host in self.allowed or self.broken_policy:
            if self.gateway:
                record = {
                    "connection_id": "f34e0b0aa1034190",
                    "request_time": accesslog.iso_time(time.time()),
                    "source_address": CURL_POD_IP,
                    "source_port": 36856,
                    "host": host,
                    "path": path,
                    "method": "HEAD",
                }
                self.gateway_log.append(json.dumps(record))
            return "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 6\r\n\r\n" + (
                "200 OK" if body else ""
            )
        return DENIED_HEAD + (DENIED_BODY if body else "")

    def exec(self, namespace: str, selector: str, container: str, argv: Sequence[str]) -> OpResult:
        command = "docker exec egress-mesh-curl-curl " + " ".join(argv)
        if not self.egress and not self.allowed:
            return OpResult(command, exit_code=7)
        out = ""
        for url in (a for a in argv if a.startswith("http")):
            host, _, path = url.removeprefix("http://").partition("/")
            out += self._answer(host.split(":")[0], "/" + path, body="I" not in argv[1])
        return OpResult(command, stdout=out)

    def logs(self, namespace: str, selector: str, container: str | None = None) -> OpResult:
        if container == "sidecar":
            return OpResult(
                f"docker logs egress-mesh-{namespace}-sidecar", stdout='{"msg": "allowed by policy"}\n'
            )
        return OpResult(
            "docker logs egress-mesh-gateway", stdout="".join(line + "\n" for line in self.gateway_log)
        )

    def pod_ip(self, namespace: str, selector: str) -> str:
        return CURL_POD_IP

    def wait_ready(self, namespace: str, selector: str, timeout: float = 120.0) -> OpResult:
        return OpResult(f"fake wait {namespace} {selector}")
