"""The Docker backend (``--backend=docker``): see ``cluster.py``; docs/docker-backend.md.

Rooms: ``naming`` (labels, kinds, selectors), ``engine`` (the Docker engine: containers, exec,
logs, cleanup), ``store`` (API objects and the manifest directory), ``pods`` (the pod runtime),
``cluster`` (``DockerCluster`` on the ``Cluster`` interface), ``hooks`` (extra wiring such as
``boundary``), ``__main__`` (``python -m scenarios.clusters.docker clean``). kubectl command lines
are answered by ``scenarios/clusters/kubectl.py``.
"""

from scenarios.clusters.docker.cluster import STANDINS, DockerCluster
from scenarios.clusters.docker.engine import ContainerSpec, PodStartError, remove_run
from scenarios.clusters.docker.naming import (
    HARNESS_LABEL,
    kind_of,
    manifest_filename,
    resolve_env,
    selector_matches,
    service_aliases,
    short_name,
    template_hash,
)

__all__ = [
    "HARNESS_LABEL",
    "STANDINS",
    "ContainerSpec",
    "DockerCluster",
    "PodStartError",
    "kind_of",
    "manifest_filename",
    "remove_run",
    "resolve_env",
    "selector_matches",
    "service_aliases",
    "short_name",
    "template_hash",
]
