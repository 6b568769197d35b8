"""meshctl install's options: ``InstallOptions`` and Helm-style ``--set key=value`` (``SET_KEYS``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mesh.api.lists import parse_cidrs, parse_ports
from mesh.api.proxyconfig import CONFIG_PORT
from mesh.api.resources import DEFAULT_MESH_NAME, DEFAULT_MESH_NAMESPACE

CONTROLLER_NAME = "osm-controller"
DEFAULT_REGISTRY = "egress-mesh"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


class OptionError(ValueError):
    """A bad install option; the message says which and why."""


@dataclass
class InstallOptions:
    mesh_name: str = DEFAULT_MESH_NAME
    namespace: str = DEFAULT_MESH_NAMESPACE
    enable_egress: bool = False
    enable_egress_policy: bool = True
    image_registry: str = DEFAULT_REGISTRY
    image_tag: str = "latest"
    image_pull_policy: str = "IfNotPresent"
    controller_image_name: str = "controller"
    proxy_image_name: str = "proxy"
    #: full image references; override registry/name/tag when set
    controller_image_ref: str = ""
    sidecar_image_ref: str = ""
    init_image_ref: str = ""
    controller_replicas: int = 1
    outbound_ip_range_exclusions: list[str] = field(default_factory=list)
    outbound_ip_range_inclusions: list[str] = field(default_factory=list)
    outbound_port_exclusions: list[int] = field(default_factory=list)
    enable_egress_boundary: bool = False

    @property
    def controller_image(self) -> str:
        return (
            self.controller_image_ref
            or f"{self.image_registry}/{self.controller_image_name}:{self.image_tag}"
        )

    @property
    def proxy_image(self) -> str:
        return self.sidecar_image_ref or f"{self.image_registry}/{self.proxy_image_name}:{self.image_tag}"

    @property
    def init_image(self) -> str:
        return self.init_image_ref or self.proxy_image

    @property
    def controller_url(self) -> str:
        return f"http://{CONTROLLER_NAME}.{self.namespace}.svc.cluster.local:{CONFIG_PORT}"


# --- --set ------------------------------------------------------------------------------------------


def _bool(key: str, text: str) -> bool:
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    raise OptionError(f"--set {key}: must be true or false (got {text!r})")


def _text(key: str, text: str) -> str:
    if not text:
        raise OptionError(f"--set {key}: must not be empty")
    return text


def _pull_policy(key: str, text: str) -> str:
    if text not in PULL_POLICIES:
        raise OptionError(f"--set {key}: must be one of {', '.join(PULL_POLICIES)} (got {text!r})")
    return text


def _replicas(key: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise OptionError(f"--set {key}: must be a whole number of at least 1 (got {text!r})")
    return int(text)


def _cidrs(key: str, text: str) -> list[str]:
    try:
        return parse_cidrs(text)
    except ValueError as exc:
        raise OptionError(f"--set {key}: {exc}") from None


def _ports(key: str, text: str) -> list[int]:
    try:
        return parse_ports(text)
    except ValueError as exc:
        raise OptionError(f"--set {key}: {exc}") from None


#: --set key -> (InstallOptions field, parser, help)
SET_KEYS: dict[str, tuple[str, Any, str]] = {
    "osm.enableEgress": ("enable_egress", _bool, "permissive egress (MeshConfig spec.traffic.enableEgress)"),
    "osm.featureFlags.enableEgressPolicy": ("enable_egress_policy", _bool, "honour Egress policies"),
    "osm.enableEgressBoundary": (
        "enable_egress_boundary",
        _bool,
        "NetworkPolicies make the mesh the only way out (MeshConfig spec.traffic.enableEgressBoundary)",
    ),
    "osm.image.registry": ("image_registry", _text, f"image prefix (default {DEFAULT_REGISTRY})"),
    "osm.image.tag": ("image_tag", _text, "image tag for every image (default latest)"),
    "osm.image.pullPolicy": ("image_pull_policy", _pull_policy, "Always, IfNotPresent or Never"),
    "osm.image.name.controller": (
        "controller_image_name",
        _text,
        "controller image name (default controller)",
    ),
    "osm.image.name.proxy": ("proxy_image_name", _text, "sidecar/init image name (default proxy)"),
    "osm.controllerImage": ("controller_image_ref", _text, "full controller image reference"),
    "osm.sidecarImage": ("sidecar_image_ref", _text, "full sidecar image reference (init too, by default)"),
    "osm.initContainerImage": ("init_image_ref", _text, "full init container image reference"),
    "osm.osmController.replicaCount": ("controller_replicas", _replicas, "controller replicas (default 1)"),
    "osm.outboundIPRangeExclusionList": ("outbound_ip_range_exclusions", _cidrs, "CIDRs never intercepted"),
    "osm.outboundIPRangeInclusionList": (
        "outbound_ip_range_inclusions",
        _cidrs,
        "only these CIDRs intercepted",
    ),
    "osm.outboundPortExclusionList": ("outbound_port_exclusions", _ports, "ports never intercepted"),
}


def split_set(value: str) -> list[tuple[str, str]]:
    """``a=1,b={x,y}`` -> [("a", "1"), ("b", "{x,y}")] (Helm's --set syntax, commas outside braces)."""
    pairs, depth, current = [], 0, ""
    for char in value + ",":
        if char == "," and depth == 0:
            if current.strip():
                key, sep, val = current.partition("=")
                if not sep or not key.strip():
                    raise OptionError(f"--set {current!r}: expected KEY=VALUE")
                pairs.append((key.strip(), val.strip()))
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        current += char
    return pairs


def apply_sets(options: InstallOptions, values: list[str]) -> tuple[InstallOptions, list[str]]:
    """Apply ``--set`` values; returns the new options and notices worth telling the user."""
    changes: dict[str, Any] = {}
    given: set[str] = set()
    for value in values:
        for name, text in split_set(value):
            if name not in SET_KEYS:
                known = "\n  ".join(f"{k}: {h}" for k, (_, _, h) in SET_KEYS.items())
                raise OptionError(f"unknown --set key {name!r}; known keys:\n  {known}")
            attr, parse, _ = SET_KEYS[name]
            changes[attr] = parse(name, text)
            given.add(name)
    result = dataclasses.replace(options, **changes)
    notices = []
    local_images = not ({"osm.image.registry", "osm.controllerImage", "osm.sidecarImage"} & given)
    if result.image_pull_policy == "Always" and local_images and result.image_registry == DEFAULT_REGISTRY:
        notices.append(
            "osm.image.pullPolicy=Always ignored: the egress-mesh images are built locally and loaded into "
            "the cluster, no registry has them; using IfNotPresent (set osm.image.registry to pull from one)"
        )
        result = dataclasses.replace(result, image_pull_policy="IfNotPresent")
    return result, notices
