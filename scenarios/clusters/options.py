"""The backend options, declared once for ``python -m scenarios`` (argparse) and pytest.

``OPTIONS`` is the table; ``add_to_parser`` puts it on an argparse parser or a pytest option
group (both take ``add_argument``-style calls) and ``backend_options`` turns parsed values back
into ``BackendOptions``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scenarios.clusters.base import BackendOptions
from scenarios.clusters.registry import BACKENDS, DEFAULT_BACKEND

DEFAULT_CLUSTER_NAME = BackendOptions.cluster_name

#: (flag, argparse/pytest keyword arguments); dest is the flag without dashes, '-' -> '_'
OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--backend", {"help": f"cluster backend (default {DEFAULT_BACKEND})"}),
    ("--keep", {"action": "store_true", "help": "leave the cluster and containers running"}),
    (
        "--reuse",
        {
            "action": "store_true",
            "help": "run in an existing cluster of that name that egress-mesh did not create "
            "(kind, k3d, k3s-container); it is never deleted",
        },
    ),
    ("--base-image", {"help": "base image for image builds (default: a local Debian base)"}),
    ("--k8s-version", {"help": "Kubernetes version (kind, k3d, k3s-container), e.g. 1.36"}),
    (
        "--cluster-name",
        {
            "default": DEFAULT_CLUSTER_NAME,
            "help": f"cluster name (kind, k3d, ...; default {DEFAULT_CLUSTER_NAME})",
        },
    ),
    ("--kubeconfig", {"help": "kubeconfig (k3s, external)"}),
    ("--registry", {"help": "registry to push images to (external)"}),
    (
        "--external",
        {
            "default": "standins",
            "choices": ["standins", "internet"],
            "help": "who answers as httpbin.org / httpstat.us: local stand-ins (default) or the internet",
        },
    ),
]


def dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_to_parser(add: Callable[..., Any], backend_default: str | None = DEFAULT_BACKEND) -> None:
    """``add`` is ``parser.add_argument`` or a pytest group's ``addoption``. pytest passes
    ``backend_default=None`` to tell a ``--backend`` the user asked for from the default one."""
    for flag, kwargs in OPTIONS:
        extra = {"default": backend_default, "choices": list(BACKENDS)} if flag == "--backend" else {}
        add(flag, dest=dest(flag), **kwargs, **extra)


def backend_name(value: str | None) -> str:
    """``--backend`` as given, or the default when it was not given (None)."""
    return value or DEFAULT_BACKEND


def backend_options(get: Callable[[str], Any]) -> BackendOptions:
    """``get(dest)`` reads a parsed value (``vars(args).get`` or ``config.getoption``)."""
    return BackendOptions(
        keep=bool(get("keep")),
        reuse=bool(get("reuse")),
        k8s_version=get("k8s_version"),
        cluster_name=get("cluster_name") or DEFAULT_CLUSTER_NAME,
        kubeconfig=get("kubeconfig"),
        registry=get("registry"),
        external=get("external") or "standins",
        base_image=get("base_image"),
    )
