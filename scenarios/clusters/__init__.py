"""The backend registry: ``create("docker", BackendOptions())`` returns a ``Cluster``.

Backends are imported only when asked for, so a missing optional tool or library affects only
the backend that needs it.
"""

from __future__ import annotations

import importlib

from scenarios.clusters.base import BackendOptions, BackendUnavailable, Cluster
from scenarios.clusters.registry import BACKENDS, CREATING_BACKENDS, DEFAULT_BACKEND

__all__ = ["BACKENDS", "CREATING_BACKENDS", "DEFAULT_BACKEND", "UnknownBackend", "backend_class", "create"]


class UnknownBackend(ValueError):
    pass


def backend_class(name: str) -> type[Cluster]:
    try:
        target = BACKENDS[name]
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} cannot be loaded ({module_name}): {exc}") from exc
    return getattr(module, class_name)


def create(name: str, options: BackendOptions | None = None) -> Cluster:
    """A backend by name; raises UnknownBackend (listing the names) or BackendUnavailable."""
    return backend_class(name)(options or BackendOptions())
