"""Sidecar injection: plain Kubernetes objects in, plain Kubernetes objects out.

The same pure functions serve the admission webhook, ``meshctl inject`` and the Docker
backend. An injected pod gets, ahead of its own init containers (so they are intercepted too):

- init container ``osm-init`` (``init_image``, root with NET_ADMIN) running
  ``mesh-proxy init --proxy-uid 1500 --proxy-port 15001 [--exclude-ip-ranges ...]
  [--exclude-ports ...] [--include-ip-ranges ...]``; exclusions are MeshConfig's
  (``settings.exclusions``) plus the pod's annotations;
- the sidecar ``sidecar`` (``proxy_image``, UID/GID 1500) as a Kubernetes native sidecar: an
  init container with ``restartPolicy: Always``, running ``mesh-proxy run --controller URL
  --readiness-port 15021`` with POD_NAMESPACE, POD_NAME, POD_IP and POD_SERVICE_ACCOUNT from the
  downward API. Its startup probe (``GET :15021/healthz/ready``) succeeds once a config has been
  applied; the kubelet starts the next init containers and the app containers only then (what
  Istio's holdApplicationUntilProxyStarts does);
- annotation ``openservicemesh.io/sidecar-injected: "true"``;
- with ``openservicemesh.io/drop-setuid-capabilities: "true"`` on the pod or its namespace,
  ``SETUID`` and ``SETGID`` dropped from the pod's own containers, so no app process can become
  the sidecar's UID (docs/boundary.md).

Pods already injected, using the host network, or opted out with
``openservicemesh.io/sidecar-injection: disabled`` on the pod or its namespace, are returned
unchanged; the webhook never injects pods of the control plane's own namespace.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.api.lists import parse_cidrs, parse_ports
from mesh.api.proxyconfig import CONFIG_PORT, READINESS_PATH, READINESS_PORT, Exclusions
from mesh.api.resources import (
    DEFAULT_MESH_NAME,
    DEFAULT_MESH_NAMESPACE,
    INJECTION_ANNOTATION,
    MONITORED_BY_LABEL,
    Namespace,
)

INJECTED_ANNOTATION = "openservicemesh.io/sidecar-injected"
EXCLUDE_IPS_ANNOTATION = "openservicemesh.io/outbound-ip-range-exclusion-list"
EXCLUDE_PORTS_ANNOTATION = "openservicemesh.io/outbound-port-exclusion-list"
INCLUDE_IPS_ANNOTATION = "openservicemesh.io/outbound-ip-range-inclusion-list"
#: "true" on a pod or its namespace (the pod's wins): its own containers lose CAP_SETUID/CAP_SETGID
DROP_SETUID_ANNOTATION = "openservicemesh.io/drop-setuid-capabilities"
SETUID_CAPABILITIES = ("SETUID", "SETGID")
INIT_CONTAINER = "osm-init"
SIDECAR_CONTAINER = "sidecar"
DISABLED_VALUES = ("disabled", "false", "no", "off")
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


class InjectionError(ValueError):
    """The pod asks for something impossible (e.g. a bad exclusion annotation)."""


def default_controller_url(mesh_namespace: str = DEFAULT_MESH_NAMESPACE) -> str:
    return f"http://osm-controller.{mesh_namespace}.svc.cluster.local:{CONFIG_PORT}"


@dataclass(frozen=True)
class InjectionSettings:
    proxy_image: str = "egress-mesh/proxy:latest"
    init_image: str = "egress-mesh/proxy:latest"
    controller_url: str = field(default_factory=default_controller_url)
    mesh_name: str = DEFAULT_MESH_NAME
    #: the control plane's namespace: the webhook never injects its pods
    mesh_namespace: str = DEFAULT_MESH_NAMESPACE
    proxy_uid: int = 1500
    proxy_port: int = 15001
    readiness_port: int = READINESS_PORT
    exclusions: Exclusions = field(default_factory=Exclusions)
    image_pull_policy: str = "IfNotPresent"


def injection_skip_reason(pod: Mapping[str, Any], namespace: Namespace | None = None) -> str | None:
    """Why this pod is left alone, or None if it should be injected."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if str(annotations.get(INJECTED_ANNOTATION, "")).lower() == "true":
        return "already injected"
    spec = pod.get("spec") or {}
    names = {c.get("name") for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]}
    if SIDECAR_CONTAINER in names:
        return "already has a sidecar container"
    if (pod.get("spec") or {}).get("hostNetwork"):
        return "pod uses the host network (its iptables rules would be the node's)"
    if str(annotations.get(INJECTION_ANNOTATION, "")).lower() in DISABLED_VALUES:
        return f"pod annotated {INJECTION_ANNOTATION}: disabled"
    if namespace and str(namespace.annotations.get(INJECTION_ANNOTATION, "")).lower() in DISABLED_VALUES:
        return f"namespace {namespace.name} annotated {INJECTION_ANNOTATION}: disabled"
    return None


def inject_pod(
    pod: Mapping[str, Any], settings: InjectionSettings, namespace: Namespace | None = None
) -> dict[str, Any]:
    """A copy of ``pod`` with the init container, sidecar and annotation added (or unchanged)."""
    result = copy.deepcopy(dict(pod))
    if injection_skip_reason(pod, namespace):
        return result
    _refuse_proxy_uid(result, settings.proxy_uid)
    meta = result.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    exclusions = effective_exclusions(settings.exclusions, annotations)
    spec = result.setdefault("spec", {})
    if drop_setuid_requested(annotations, namespace):
        _drop_setuid(spec)
    spec["initContainers"] = [
        init_container(settings, exclusions),
        sidecar_container(settings),
        *(spec.get("initContainers") or []),
    ]
    meta["annotations"] = {**annotations, INJECTED_ANNOTATION: "true"}
    return result


def inject_workload(
    obj: Mapping[str, Any], settings: InjectionSettings, namespace: Namespace | None = None
) -> dict[str, Any]:
    """Inject a Pod, or the pod template of a Deployment/StatefulSet/DaemonSet/ReplicaSet/Job/CronJob.

    Other kinds (Services, ServiceAccounts, ...) come back unchanged.
    """
    result = copy.deepcopy(dict(obj))
    kind = obj.get("kind")
    if kind == "Pod":
        return inject_pod(obj, settings, namespace)
    spec = result.get("spec") or {}
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    elif kind not in POD_TEMPLATE_KINDS:
        return result
    if isinstance(spec.get("template"), Mapping):
        spec["template"] = inject_pod(spec["template"], settings, namespace)
    return result


def pod_template(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A Pod itself, or the pod template of a kind ``inject_workload`` injects; None for others."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return obj
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    elif kind not in POD_TEMPLATE_KINDS:
        return None
    template = spec.get("template")
    return template if isinstance(template, Mapping) else None


def _refuse_proxy_uid(pod: Mapping[str, Any], proxy_uid: int) -> None:
    """The interception rules let the sidecar's UID out unredirected, so an app running as that
    UID would bypass the mesh: refuse such pods rather than inject them."""
    spec = pod.get("spec") or {}
    pod_uid = (spec.get("securityContext") or {}).get("runAsUser")
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        uid = (container.get("securityContext") or {}).get("runAsUser", pod_uid)
        if uid == proxy_uid:
            raise InjectionError(
                f"container {container.get('name')!r} runs as UID {proxy_uid}, the sidecar's UID, whose "
                "traffic is not intercepted: run it as another user"
            )


def drop_setuid_requested(annotations: Mapping[str, Any], namespace: Namespace | None) -> bool:
    """``DROP_SETUID_ANNOTATION`` of the pod, else of its namespace; absent means no."""
    for where, source in (("pod", annotations), ("namespace", namespace.annotations if namespace else {})):
        value = source.get(DROP_SETUID_ANNOTATION)
        if value is None:
            continue
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise InjectionError(
            f"{where} annotation {DROP_SETUID_ANNOTATION}: must be true or false (got {value!r})"
        )
    return False


def _capability(name: Any) -> str:
    return str(name).upper().removeprefix("CAP_")


def keeps_setuid(container: Mapping[str, Any]) -> bool:
    """Whether a root process in ``container`` may still change its UID (e.g. to the sidecar's 1500,
    whose traffic is not intercepted): privileged, or CAP_SETUID/CAP_SETGID not both dropped."""
    context = container.get("securityContext") or {}
    if context.get("privileged"):
        return True
    dropped = {_capability(c) for c in (context.get("capabilities") or {}).get("drop") or ()}
    return "ALL" not in dropped and not set(SETUID_CAPABILITIES) <= dropped


def _drop_setuid(spec: dict[str, Any]) -> None:
    """Add SETUID and SETGID to ``capabilities.drop`` of each of the pod's own containers (its init
    containers too: they share the network). A container that asks for them is refused."""
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        context = container.setdefault("securityContext", {})
        name = container.get("name")
        if context.get("privileged"):
            raise InjectionError(
                f"container {name!r} is privileged, so it keeps CAP_SETUID/CAP_SETGID, but "
                f"{DROP_SETUID_ANNOTATION} asks to drop them: remove privileged or the annotation"
            )
        capabilities = context.setdefault("capabilities", {})
        added = {_capability(c) for c in capabilities.get("add") or ()} & set(SETUID_CAPABILITIES)
        if added:
            raise InjectionError(
                f"container {name!r} adds {', '.join(sorted(added))}, but {DROP_SETUID_ANNOTATION} asks "
                "to drop CAP_SETUID/CAP_SETGID: remove one or the other"
            )
        dropped = list(capabilities.get("drop") or ())
        if "ALL" not in {_capability(c) for c in dropped}:
            present = {_capability(c) for c in dropped}
            capabilities["drop"] = [*dropped, *(c for c in SETUID_CAPABILITIES if c not in present)]


def effective_exclusions(mesh: Exclusions, annotations: Mapping[str, Any]) -> Exclusions:
    """MeshConfig exclusions plus the pod's annotations (order kept, duplicates dropped)."""
    ips = _cidrs(annotations, EXCLUDE_IPS_ANNOTATION)
    ports = _ports(annotations, EXCLUDE_PORTS_ANNOTATION)
    includes = _cidrs(annotations, INCLUDE_IPS_ANNOTATION)
    return Exclusions(
        ip_ranges=tuple(dict.fromkeys([*mesh.ip_ranges, *ips])),
        ports=tuple(dict.fromkeys([*mesh.ports, *ports])),
        include_ip_ranges=tuple(dict.fromkeys([*mesh.include_ip_ranges, *includes])),
    )


def init_container(settings: InjectionSettings, exclusions: Exclusions) -> dict[str, Any]:
    command = [
        "mesh-proxy",
        "init",
        "--proxy-uid",
        str(settings.proxy_uid),
        "--proxy-port",
        str(settings.proxy_port),
    ]
    for flag, values in (
        ("--exclude-ip-ranges", exclusions.ip_ranges),
        ("--exclude-ports", exclusions.ports),
        ("--include-ip-ranges", exclusions.include_ip_ranges),
    ):
        if values:
            command += [flag, ",".join(str(v) for v in values)]
    return {
        "name": INIT_CONTAINER,
        "image": settings.init_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "capabilities": {"add": ["NET_ADMIN"]},
        },
    }


def sidecar_container(settings: InjectionSettings) -> dict[str, Any]:
    """The native sidecar (an init container that keeps running: ``restartPolicy: Always``)."""

    def field_env(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    ready = {"httpGet": {"path": READINESS_PATH, "port": settings.readiness_port}, "timeoutSeconds": 1}
    return {
        "name": SIDECAR_CONTAINER,
        "image": settings.proxy_image,
        "imagePullPolicy": settings.image_pull_policy,
        "restartPolicy": "Always",
        "command": [
            "mesh-proxy",
            "run",
            "--controller",
            settings.controller_url,
            "--port",
            str(settings.proxy_port),
            "--readiness-port",
            str(settings.readiness_port),
        ],
        "ports": [{"name": "proxy-ready", "containerPort": settings.readiness_port, "protocol": "TCP"}],
        # Up to 10 minutes for a first config (controller starting, API slow), then restarted.
        "startupProbe": {**ready, "periodSeconds": 1, "failureThreshold": 600},
        "readinessProbe": {**ready, "periodSeconds": 5, "failureThreshold": 3},
        "env": [
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_IP", "status.podIP"),
            field_env("POD_SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
        "securityContext": {
            "runAsUser": settings.proxy_uid,
            "runAsGroup": settings.proxy_uid,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
        },
    }


def is_monitored(namespace: Namespace | None, mesh_name: str) -> bool:
    return namespace is not None and namespace.labels.get(MONITORED_BY_LABEL) == mesh_name


def admission_review(
    review: Mapping[str, Any], settings: InjectionSettings, namespace: Namespace | None = None
) -> dict[str, Any]:
    """Answer an AdmissionReview v1 for a pod creation.

    ``namespace`` is the pod's Namespace as the controller knows it; pods in namespaces not
    monitored by ``settings.mesh_name`` (or unknown) are allowed without a patch.
    """
    request = review.get("request") or {}
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    answer = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    pod = request.get("object")
    if (request.get("kind") or {}).get("kind", "Pod") != "Pod" or not isinstance(pod, Mapping):
        return answer
    pod_namespace = request.get("namespace") or (namespace.name if namespace else "")
    if pod_namespace == settings.mesh_namespace:  # its pods would wait for the webhook they serve
        return answer
    if not is_monitored(namespace, settings.mesh_name):
        return answer
    try:
        injected = inject_pod(pod, settings, namespace)
    except InjectionError as exc:
        response.update(allowed=False, status={"code": 400, "message": str(exc)})
        return answer
    patch = json_patch(pod, injected)
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return answer


def json_patch(original: Mapping[str, Any], injected: Mapping[str, Any]) -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``original`` into ``injected`` (for what inject_pod changes)."""
    ops: list[dict[str, Any]] = []
    spec, new_spec = original.get("spec") or {}, injected.get("spec") or {}
    for fld in ("initContainers", "containers"):
        old, new = spec.get(fld) or [], new_spec.get(fld) or []
        added = len(new) - len(old)
        if old == new:
            continue
        if fld not in spec or not old:
            ops.append({"op": "add", "path": f"/spec/{fld}", "value": new})
        elif added > 0 and new[added:] == old:  # inserted in front
            ops += [{"op": "add", "path": f"/spec/{fld}/{i}", "value": c} for i, c in enumerate(new[:added])]
        elif added > 0 and new[: len(old)] == old:
            ops += [{"op": "add", "path": f"/spec/{fld}/-", "value": c} for c in new[len(old) :]]
        else:
            ops.append({"op": "replace", "path": f"/spec/{fld}", "value": new})
    meta, new_meta = original.get("metadata") or {}, injected.get("metadata") or {}
    old_ann, new_ann = meta.get("annotations"), new_meta.get("annotations") or {}
    if ops and "metadata" not in original:
        ops.append({"op": "add", "path": "/metadata", "value": {"annotations": new_ann}})
    elif ops and old_ann is None:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": new_ann})
    elif ops:
        for key in sorted(set(new_ann) - set(old_ann)):
            path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
            ops.append({"op": "add", "path": path, "value": new_ann[key]})
    return ops


def _cidrs(annotations: Mapping[str, Any], key: str) -> list[str]:
    try:
        return parse_cidrs(str(annotations.get(key) or ""))
    except ValueError as exc:
        raise InjectionError(f"annotation {key}: {exc}") from None


def _ports(annotations: Mapping[str, Any], key: str) -> list[int]:
    try:
        return parse_ports(str(annotations.get(key) or ""))
    except ValueError as exc:
        raise InjectionError(f"annotation {key}: {exc}") from None
