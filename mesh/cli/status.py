"""meshctl status and version."""

from __future__ import annotations

import argparse

from mesh.api.resources import DEFAULT_MESHCONFIG_NAME, MESHCONFIG_API, POLICY_API
from mesh.api.validation import describe, validate_objects
from mesh.manifests.kube import ClusterUnreachable, KubeError

from .common import ApiFactory, say, version
from .install import _controller_pending
from .namespaces import _injection, _monitored


def cmd_status(args: argparse.Namespace, connect: ApiFactory) -> int:
    api = connect(args)
    ns = args.osm_namespace
    say(f"Mesh [{args.mesh_name}] in namespace [{ns}] (Kubernetes {api.server_version()})")
    try:
        pending = _controller_pending(api, ns)
        meshconfig = api.get(MESHCONFIG_API, "MeshConfig", DEFAULT_MESHCONFIG_NAME, ns)
        egresses = api.list(POLICY_API, "Egress")
        gateways = api.list(POLICY_API, "EgressGateway")
    except KubeError as exc:
        if isinstance(exc, ClusterUnreachable):
            raise
        say(f"  not installed: {exc}")
        return 1
    say(f"  controller:      {'ready' if pending is None else 'NOT READY: ' + pending}")
    if meshconfig is None:
        say(f"  egress:          MeshConfig {ns}/{DEFAULT_MESHCONFIG_NAME} not found")
    else:
        spec = meshconfig.get("spec") or {}
        enabled = bool((spec.get("traffic") or {}).get("enableEgress", False))
        mode = "permissive (enableEgress: true)" if enabled else "policy (enableEgress: false)"
        say(f"  egress:          {mode}")
    global_gateways = [describe(g) for g in gateways if (g.get("spec") or {}).get("global")]
    say(f"  Egress policies: {len(egresses)}")
    say(
        f"  EgressGateways:  {len(gateways)}"
        + (f" (global: {', '.join(global_gateways)})" if global_gateways else "")
    )
    namespaces = sorted(_monitored(api, args.mesh_name), key=lambda n: n["metadata"]["name"])
    listed = ", ".join(
        n["metadata"]["name"] + (" (injection disabled)" if _injection(n) == "disabled" else "")
        for n in namespaces
    )
    say(f"  namespaces:      {listed or 'none (add one: meshctl namespace add NAME)'}")
    objects = [o for o in [meshconfig, *egresses, *gateways] if o is not None]
    for obj in objects:  # what the API server adds is not part of the user's object
        for field in ("status",):
            obj.pop(field, None)
    problems = validate_objects(objects).problems
    for problem in problems:
        say(f"  invalid:         {problem}")
    return 0 if pending is None and not problems else 1


def cmd_version(args: argparse.Namespace, connect: ApiFactory) -> int:
    say(f"meshctl version {version()} (egress-mesh)")
    return 0
