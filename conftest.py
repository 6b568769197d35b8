"""Top-level pytest options and policy shared by every test directory."""

from __future__ import annotations

import os

import pytest

#: Tests with these marks skip on machines without root, Docker or a backend. Where the
#: environment promises them (CI sets EGRESS_MESH_REQUIRE_ALL=1), such a skip is a failure, so a
#: broken setup cannot pass by running nothing.
ENVIRONMENT_MARKS = ("root", "docker", "e2e")


def pytest_addoption(parser):
    group = parser.getgroup("egress-mesh")
    group.addoption(
        "--backend",
        default="docker",
        help="cluster backend for tests/e2e: docker (default), k3s, kind, k3d, k3s-container, external",
    )
    # --k8s-version and --k8s-cluster-name come from pytest-kubernetes and are reused by our backends.
    group.addoption("--keep", action="store_true", help="keep the cluster and containers after the run")
    group.addoption(
        "--require-all",
        action="store_true",
        default=os.environ.get("EGRESS_MESH_REQUIRE_ALL") == "1",
        help="fail (instead of skip) root, Docker and e2e tests whose environment is missing "
        "(default on when EGRESS_MESH_REQUIRE_ALL=1, as in CI)",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or not item.config.getoption("--require-all"):
        return
    if any(item.get_closest_marker(mark) for mark in ENVIRONMENT_MARKS):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but --require-all is set: {reason}"
