"""Top-level pytest options shared by every test directory."""

from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("egress-mesh")
    group.addoption(
        "--backend",
        default="docker",
        help="cluster backend for tests/e2e: docker (default), k3s, kind, k3d, k3s-container, external",
    )
    # --k8s-version and --k8s-cluster-name come from pytest-kubernetes and are reused by our backends.
    group.addoption("--keep", action="store_true", help="keep the cluster and containers after the run")
