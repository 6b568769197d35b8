"""The e2e cluster: one per session, on the backend chosen by ``--backend`` (default docker).

Images are built (content-tagged, so unchanged images are reused) and loaded, the cluster is
started and the mesh installed once; each scenario then starts from a known state (the runner
resets the cluster first). ``--keep`` leaves everything running for debugging.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scenarios.clusters import UnknownBackend, create
from scenarios.clusters.base import BackendOptions, BackendUnavailable, Cluster
from scenarios.runner import prepare


@pytest.fixture(scope="session")
def backend_name(request) -> str:
    return request.config.getoption("--backend")


@pytest.fixture(scope="session")
def cluster(request, backend_name) -> Iterator[Cluster]:
    keep = request.config.getoption("--keep")
    options = BackendOptions(keep=keep)
    k8s_version = request.config.getoption("--k8s-version", default=None)
    if k8s_version:
        options.k8s_version = k8s_version
    cluster_name = request.config.getoption("--k8s-cluster-name", default=None)
    if cluster_name:
        options.cluster_name = cluster_name
    try:
        cluster = create(backend_name, options)
    except UnknownBackend as exc:
        raise pytest.UsageError(str(exc)) from None
    except BackendUnavailable as exc:
        pytest.skip(f"backend {backend_name} unavailable: {exc}")
    try:
        prepare(cluster, progress=lambda line: print(f"[e2e] {line}", flush=True))
    except BackendUnavailable as exc:
        cluster.down(keep=keep)
        pytest.skip(f"backend {backend_name} unavailable: {exc}")
    except BaseException:
        cluster.down(keep=keep)
        raise
    yield cluster
    cluster.down(keep=keep)
