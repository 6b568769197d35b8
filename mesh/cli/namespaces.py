"""meshctl namespace add, remove and list: the namespaces whose pods get the sidecar."""

from __future__ import annotations

import argparse
from typing import Any

from mesh.api.resources import INJECTION_ANNOTATION, MONITORED_BY_LABEL
from mesh.manifests.kube import KubeApi

from .common import ApiFactory, CliError, say


def _namespace(api: KubeApi, name: str) -> dict[str, Any]:
    found = api.get("v1", "Namespace", name)
    if found is None:
        raise CliError(f"namespace {name} not found (create it first: kubectl create namespace {name})")
    return found


def cmd_namespace_add(args: argparse.Namespace, connect: ApiFactory) -> int:
    api = connect(args)
    for name in args.namespaces:
        labels = (_namespace(api, name).get("metadata") or {}).get("labels") or {}
        current = labels.get(MONITORED_BY_LABEL)
        if current and current != args.mesh_name:
            raise CliError(
                f"namespace {name} already belongs to mesh [{current}]; remove it from there first"
            )
        injection = "disabled" if args.disable_sidecar_injection else "enabled"
        patch = {
            "metadata": {
                "labels": {MONITORED_BY_LABEL: args.mesh_name},
                "annotations": {INJECTION_ANNOTATION: injection},
            }
        }
        api.patch_merge("v1", "Namespace", name, patch)
        extra = " (sidecar injection disabled)" if args.disable_sidecar_injection else ""
        say(f"Namespace [{name}] successfully added to mesh [{args.mesh_name}]{extra}")
    return 0


def cmd_namespace_remove(args: argparse.Namespace, connect: ApiFactory) -> int:
    api = connect(args)
    for name in args.namespaces:
        labels = (_namespace(api, name).get("metadata") or {}).get("labels") or {}
        current = labels.get(MONITORED_BY_LABEL)
        if current != args.mesh_name:
            where = f"mesh [{current}]" if current else "no mesh"
            raise CliError(f"namespace {name} belongs to {where}, not to mesh [{args.mesh_name}]")
        patch = {
            "metadata": {"labels": {MONITORED_BY_LABEL: None}, "annotations": {INJECTION_ANNOTATION: None}}
        }
        api.patch_merge("v1", "Namespace", name, patch)
        say(f"Namespace [{name}] successfully removed from mesh [{args.mesh_name}]")
    return 0


def _monitored(api: KubeApi, mesh_name: str) -> list[dict[str, Any]]:
    return api.list("v1", "Namespace", label_selector=f"{MONITORED_BY_LABEL}={mesh_name}")


def _injection(ns: dict[str, Any]) -> str:
    value = ((ns.get("metadata") or {}).get("annotations") or {}).get(INJECTION_ANNOTATION, "enabled")
    return "disabled" if str(value).lower() in ("disabled", "false", "no", "off") else "enabled"


def cmd_namespace_list(args: argparse.Namespace, connect: ApiFactory) -> int:
    api = connect(args)
    namespaces = _monitored(api, args.mesh_name)
    if not namespaces:
        say(f"No namespaces in mesh [{args.mesh_name}]")
        return 0
    say(f"{'NAMESPACE':<30} {'MESH':<12} SIDECAR-INJECTION")
    for ns in sorted(namespaces, key=lambda n: n["metadata"]["name"]):
        say(f"{ns['metadata']['name']:<30} {args.mesh_name:<12} {_injection(ns)}")
    return 0
