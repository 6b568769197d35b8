"""The backends by name: the one list (``python -m scenarios``, the pytest plugin, doctor, nox).

No imports on purpose: ``noxfile.py`` reads this file with ``runpy`` before egress-mesh is
installed in the session.
"""

#: backend name -> "module:Class" (imported only when asked for)
BACKENDS: dict[str, str] = {
    "docker": "scenarios.clusters.docker:DockerCluster",
    "k3s": "scenarios.clusters.k3s:K3sCluster",
    "kind": "scenarios.clusters.kind:KindCluster",
    "k3d": "scenarios.clusters.k3d:K3dCluster",
    "k3s-container": "scenarios.clusters.k3s_container:K3sContainerCluster",
    "external": "scenarios.clusters.external:ExternalCluster",
}
#: backends whose clusters the harness creates (recorded, deleted unless --keep, see records.py)
CREATING_BACKENDS = ("kind", "k3d", "k3s-container")
DEFAULT_BACKEND = "docker"
