"""The e2e cluster: one per session, on the backend chosen by ``--backend`` (default docker).

Images are built (content-tagged, so unchanged images are reused) and loaded, the cluster is
started and the mesh installed once; each scenario then starts from a known state (the runner
resets the cluster first). ``--keep`` leaves everything running for debugging.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from rich.console import Console

from scenarios.clusters import UnknownBackend, create
from scenarios.clusters.base import BackendOptions, BackendUnavailable, Cluster
from scenarios.runner import ConsoleObserver, Runner, RunResult, prepare


def pytest_addoption(parser):
    # The same options as `python -m scenarios run`, so CI and laptops run one command:
    # nox -s "e2e(backend='kind')" -- --k8s-version 1.36 --report report.json
    group = parser.getgroup("egress-mesh e2e")
    group.addoption("--base-image", default=None, help="base image for image builds (default: local Debian)")
    group.addoption("--report", default=None, metavar="FILE.json", help="write the JSON report of every step")
    group.addoption(
        "--external", default="standins", choices=["standins", "internet"], help="external services"
    )
    group.addoption("--registry", default=None, help="registry to push images to (external backend)")
    group.addoption("--kubeconfig", default=None, help="kubeconfig (k3s, external backends)")


@pytest.fixture(scope="session")
def backend_name(request) -> str:
    return request.config.getoption("--backend")


@pytest.fixture(scope="session")
def cluster(request, backend_name) -> Iterator[Cluster]:
    keep = request.config.getoption("--keep")
    options = BackendOptions(
        keep=keep,
        base_image=request.config.getoption("--base-image"),
        external=request.config.getoption("--external"),
        registry=request.config.getoption("--registry"),
        kubeconfig=request.config.getoption("--kubeconfig"),
    )
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
        prepare(
            cluster, base_image=options.base_image, progress=lambda line: print(f"[e2e] {line}", flush=True)
        )
    except BackendUnavailable as exc:
        cluster.down(keep=keep)
        pytest.skip(f"backend {backend_name} unavailable: {exc}")
    except BaseException:
        cluster.down(keep=keep)
        raise
    yield cluster
    cluster.down(keep=keep)


@pytest.fixture(scope="session")
def e2e_report(request, backend_name) -> Iterator[RunResult]:
    """Scenario results of the session, written as the JSON report when ``--report`` is given."""
    run = RunResult(backend=backend_name, started=datetime.now(UTC).isoformat(timespec="seconds"))
    yield run
    path = request.config.getoption("--report")
    if path:
        from scenarios import report

        report.write(run, path)


@pytest.fixture
def passes(e2e_report, cluster):
    """``passes(scenario)`` runs a scenario on the session's cluster, records it in the report, and
    asserts it passed with no step skipped (the printed steps show when the test fails)."""

    def check(scenario) -> None:
        console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        result = Runner(cluster, [ConsoleObserver(console)]).run_scenario(scenario)
        e2e_report.scenarios.append(result)
        if result.skipped:
            pytest.skip(result.skipped)
        assert result.passed, result.explain()
        skipped = [f"step {s.index} ({s.kind}): {s.skipped}" for s in result.steps if s.skipped]
        assert not skipped, "steps this backend could not run:\n" + "\n".join(skipped)

    return check
