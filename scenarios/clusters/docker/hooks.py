"""Extra wiring of the Docker backend, kept in its own modules: one line in ``HOOKS`` each.

A hook is a ``DockerHook`` subclass; the backend makes one per cluster and calls it at the points
below (every method has a do-nothing default). The egress boundary's host firewall
(``boundary.py``) is the example.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scenarios.clusters.docker.cluster import DockerCluster
    from scenarios.clusters.docker.engine import ContainerSpec
    from scenarios.clusters.docker.pods import Pod

#: "module:Class" of every hook, in the order they run
HOOKS: tuple[str, ...] = (
    "scenarios.clusters.docker.boundary:BoundaryHook",
    "scenarios.clusters.docker.credentials:CredentialsHook",
)


class DockerHook:
    #: what the hook enforces, for error messages ("error: egress boundary: ...")
    what = "docker backend hook"

    def __init__(self, cluster: DockerCluster) -> None:
        self.cluster = cluster

    def capabilities(self) -> frozenset[str]:
        """Capabilities this hook adds to the backend (e.g. ``network-policy``)."""
        return frozenset()

    def controller_spec(self, spec: ContainerSpec) -> None:
        """Change the controller's container (mounts, env, command) before it starts."""

    def container_spec(self, pod: Pod, container: Mapping[str, Any], spec: ContainerSpec) -> None:
        """Change one container of a pod (init, sidecar or app) before it starts."""

    def sandbox_started(self, pod: Pod) -> list[str]:
        """The pod's network namespace is up and none of its processes runs yet; raise
        ``PodStartError`` to fail the pod. Returns the commands run (for display)."""
        return []

    def objects_changed(self) -> list[str]:
        """After apply, delete, patch, a label/annotation change or reset; raise RuntimeError to fail
        the change with that message. Returns the commands run (for display)."""
        return []

    @staticmethod
    def cleanup(run_id: str | None) -> list[str]:
        """Remove what the hook made outside Docker for one run (every run when None), from
        ``down()`` and ``python -m scenarios.clusters.docker clean``; returns what it removed."""
        return []


def hook_classes() -> list[type[DockerHook]]:
    classes = []
    for target in HOOKS:
        module, name = target.split(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


def cleanups() -> list[Callable[[str | None], list[str]]]:
    return [cls.cleanup for cls in hook_classes()]
