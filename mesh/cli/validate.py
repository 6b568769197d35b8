"""meshctl validate: check manifests offline against the CRD schemas, the mesh rules and Kubernetes."""

from __future__ import annotations

import argparse
import sys

from mesh.api import crds
from mesh.api.load import Document, load_paths
from mesh.api.resources import DEFAULT_MESHCONFIG_NAME, MONITORED_BY_LABEL, Namespace
from mesh.api.validation import Problem, describe, field_path, is_mesh_kind, validate_objects

from .common import ApiFactory, CliError, say


def cmd_validate(args: argparse.Namespace, connect: ApiFactory) -> int:
    documents = load_paths(args.filename)
    problems = validate_objects(documents).problems
    if args.kubernetes_version:
        problems += _kubernetes_problems(documents, args.kubernetes_version, {p.source for p in problems})
    for problem in problems:
        print(problem, file=sys.stderr)
    for warning in _setuid_warnings(documents, args.mesh_name, args.osm_namespace):
        print(f"warning: {warning}", file=sys.stderr)
    mesh_kinds = {kind for _, kind in crds.KINDS}
    mesh_objects = sum(1 for d in documents if isinstance(d.obj, dict) and d.obj.get("kind") in mesh_kinds)
    if problems:
        print(f"{len(problems)} problem(s) in {len(documents)} object(s)", file=sys.stderr)
        return 1
    checked = f"{mesh_objects} mesh object(s) checked against the CRD schemas"
    if args.kubernetes_version:
        checked += f", the others against Kubernetes {args.kubernetes_version}"
    say(f"{len(documents)} object(s) valid ({checked})")
    return 0


def _setuid_warnings(documents: list[Document], mesh_name: str, mesh_namespace: str) -> list[str]:
    """Pods (and workloads' pod templates) in a namespace of the mesh whose containers keep
    CAP_SETUID/CAP_SETGID while the egress boundary is on, as far as the files tell: their MeshConfig
    and Namespaces. Such a container can run as the sidecar's UID and tunnel past the policy through
    the gateway (docs/boundary.md)."""
    from mesh.controller import injector

    objects = [d.obj for d in documents if isinstance(d.obj, dict)]
    meshconfig = next(
        (
            o
            for o in objects
            if o.get("kind") == "MeshConfig"
            and (o.get("metadata") or {}).get("name") == DEFAULT_MESHCONFIG_NAME
            and (o.get("metadata") or {}).get("namespace", mesh_namespace) == mesh_namespace
        ),
        None,
    )
    traffic = ((meshconfig or {}).get("spec") or {}).get("traffic") or {}
    if traffic.get("enableEgressBoundary") is not True:
        return []
    namespaces = {
        ns.name: ns
        for ns in (Namespace.from_object(o) for o in objects if o.get("kind") == "Namespace")
        if ns.labels.get(MONITORED_BY_LABEL) == mesh_name
    }
    warnings = []
    for obj in objects:
        template = injector.pod_template(obj)
        meta = obj.get("metadata") or {}
        namespace = namespaces.get(meta.get("namespace") or "default")
        if template is None or namespace is None or namespace.name == mesh_namespace:
            continue
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        spec = template.get("spec") or {}
        as_created = {  # the pod as the webhook sees it: without a sidecar, UID 1500 bypasses nothing
            "metadata": {"annotations": {**annotations, injector.INJECTED_ANNOTATION: "false"}},
            "spec": {"hostNetwork": spec.get("hostNetwork")},
        }
        if injector.injection_skip_reason(as_created, namespace):
            continue
        try:
            if injector.drop_setuid_requested(annotations, namespace):
                continue
        except injector.InjectionError:
            pass  # the webhook refuses it; keep warning about what it asks for
        kept = [
            str(c.get("name"))
            for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
            if c.get("name") not in (injector.INIT_CONTAINER, injector.SIDECAR_CONTAINER)
            and injector.keeps_setuid(c)
        ]
        if kept:
            warnings.append(
                f"{describe(obj)}: container(s) {', '.join(kept)} keep CAP_SETUID/CAP_SETGID in namespace "
                f"{namespace.name} while the egress boundary is on: as UID 1500 they bypass the sidecar "
                f'(annotate the pod or namespace {injector.DROP_SETUID_ANNOTATION}: "true", or drop '
                "SETUID and SETGID in securityContext.capabilities)"
            )
    return warnings


def _kubernetes_problems(documents: list[Document], version: str, failed: set[str]) -> list[Problem]:
    """Built-in kinds against the Kubernetes JSON schemas of ``version`` (kubernetes-validate, strict)."""
    try:
        import kubernetes_validate
    except ImportError:
        raise CliError(
            "--kubernetes-version needs the kubernetes-validate package (pip install kubernetes-validate)"
        ) from None
    problems = []
    for doc in documents:
        if doc.source in failed or not isinstance(doc.obj, dict) or is_mesh_kind(doc.obj):
            continue
        try:
            kubernetes_validate.validate(doc.obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(
                Problem(describe(doc.obj), field_path(exc.absolute_path), exc.message, doc.source)
            )
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(Problem(describe(doc.obj), "apiVersion", exc.message, doc.source))
        except (kubernetes_validate.utils.VersionNotSupportedError, IndexError):
            utils = kubernetes_validate.utils
            known = ", ".join(dict.fromkeys(utils.major_minor(v) for v in utils.all_versions()))
            raise CliError(
                f"--kubernetes-version {version}: not supported; known versions: {known}"
            ) from None
    return problems
