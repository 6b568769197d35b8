"""The CustomResourceDefinitions of the mesh API: the single source of truth for its objects.

The manifests live next to this module (``mesh/api/crds/*.yaml``, ``kubectl apply -f`` works on
them). ``meshctl install`` applies them, and ``mesh.api.validation`` validates objects outside a
cluster with the very same ``openAPIV3Schema``.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml

from mesh.api.resources import MESHCONFIG_API, POLICY_API, SMI_SPECS_API

CRD_FILES = ("meshconfig.yaml", "egress.yaml", "egressgateway.yaml", "httproutegroup.yaml")

#: (apiVersion, kind) of every custom resource the mesh defines
KINDS: tuple[tuple[str, str], ...] = (
    (MESHCONFIG_API, "MeshConfig"),
    (POLICY_API, "Egress"),
    (POLICY_API, "EgressGateway"),
    (SMI_SPECS_API, "HTTPRouteGroup"),
)


@functools.cache
def _load() -> tuple[dict[str, Any], ...]:
    folder = resources.files("mesh.api") / "crds"
    return tuple(yaml.safe_load((folder / name).read_text(encoding="utf-8")) for name in CRD_FILES)


def crds() -> list[dict[str, Any]]:
    """Fresh copies of the CRD manifests (MeshConfig, Egress, EgressGateway, HTTPRouteGroup)."""
    return copy.deepcopy(list(_load()))


def crd_names() -> list[str]:
    return [crd["metadata"]["name"] for crd in _load()]


def crd_for(api_version: str, kind: str) -> dict[str, Any] | None:
    """The CRD serving ``kind`` at ``api_version``, or None when the mesh does not define it."""
    group, _, version = api_version.rpartition("/")
    for crd in _load():
        spec = crd["spec"]
        if spec["group"] == group and spec["names"]["kind"] == kind:
            if any(v["name"] == version and v.get("served", True) for v in spec["versions"]):
                return copy.deepcopy(crd)
    return None


def served_versions(kind: str) -> list[str]:
    """``group/version`` strings under which ``kind`` is served (for error messages)."""
    return [
        f"{crd['spec']['group']}/{v['name']}"
        for crd in _load()
        if crd["spec"]["names"]["kind"] == kind
        for v in crd["spec"]["versions"]
        if v.get("served", True)
    ]


def schema_for(api_version: str, kind: str) -> dict[str, Any] | None:
    """The ``openAPIV3Schema`` for ``kind`` at ``api_version`` (None when not a mesh kind)."""
    crd = crd_for(api_version, kind)
    if crd is None:
        return None
    version = api_version.rpartition("/")[2]
    return next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version)
