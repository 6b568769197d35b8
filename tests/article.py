"""The osm-edge egress article's mesh objects, verbatim: the one copy the tests share.

The demo catalog (``scenarios/catalog/``) keeps its own copy on purpose; ``test_scenario_catalog``
checks it against this one, so a drift in either shows up as a failing test.
"""

from __future__ import annotations

from typing import Any

import yaml

EGRESS_HTTPBIN_80 = """\
kind: Egress
apiVersion: policy.openservicemesh.io/v1alpha1
metadata:
  name: httpbin-80
  namespace: curl
spec:
  sources:
  - kind: ServiceAccount
    name: curl
    namespace: curl
  hosts:
  - httpbin.org
  ports:
  - number: 80
    protocol: http
"""
EGRESS_GATEWAY = """\
kind: EgressGateway
apiVersion: policy.openservicemesh.io/v1alpha1
metadata:
  name: global-egress-gateway
  namespace: egress-gateway
spec:
  global:
  - service: global-egress-gateway
    namespace: egress-gateway
"""
ARTICLE_MANIFESTS = EGRESS_HTTPBIN_80 + "---\n" + EGRESS_GATEWAY
#: the sidecar's answer to a request no Egress allows, head as the article prints it, then its 13-byte body
DENIED_HEAD = "HTTP/1.1 403 Forbidden\r\ncontent-length: 13\r\nconnection: keep-alive\r\n\r\n"
DENIED_BODY = "Access denied"


def httpbin_80() -> dict[str, Any]:
    """The article's Egress ``httpbin-80``, a fresh object each call."""
    return yaml.safe_load(EGRESS_HTTPBIN_80)


def global_egress_gateway() -> dict[str, Any]:
    """The article's EgressGateway ``global-egress-gateway``, a fresh object each call."""
    return yaml.safe_load(EGRESS_GATEWAY)


def egress_text(name: str = "httpbin-80", host: str = "httpbin.org") -> str:
    """The article's Egress text with another name and host."""
    return EGRESS_HTTPBIN_80.replace("name: httpbin-80", f"name: {name}").replace(
        "- httpbin.org", f"- {host}"
    )


def meshconfig(enable_egress: bool, **traffic: Any) -> dict[str, Any]:
    """The mesh's MeshConfig ``osm-system/osm-mesh-config``, as the article's ``kubectl patch`` leaves it."""
    return {
        "apiVersion": "config.openservicemesh.io/v1alpha2",
        "kind": "MeshConfig",
        "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
        "spec": {"traffic": {"enableEgress": enable_egress, **traffic}},
    }


def meshconfig_yaml(enable_egress: bool) -> str:
    """:func:`meshconfig` as a manifest file's text."""
    return yaml.safe_dump(meshconfig(enable_egress), sort_keys=False)
