"""The plugin's fixtures: the session's mesh cluster, a scenario runner, and step-level helpers.

A backend asked for with ``--backend`` (as nox and CI do) that cannot come up is an error of every
test using the cluster, never a skip: a run meant to exercise kind must not pass having run
nothing. Without ``--backend`` (a plain ``pytest`` on a laptop) an unavailable Docker backend skips
with the reason (a failure under ``--require-all``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scenarios import options
from scenarios.clusters import UnknownBackend, create
from scenarios.clusters.base import BackendUnavailable, Cluster
from scenarios.format import Scenario, load
from scenarios.harness import MeshHarness
from scenarios.pipeline import prepare
from scenarios.pytest_plugin.outcome import check_result, run_and_record
from scenarios.pytest_plugin.session import STATE
from scenarios.runner import RunResult, ScenarioResult


def _unavailable(request: pytest.FixtureRequest, backend: str, reason: str):
    if request.config.getoption("backend") is not None:
        pytest.fail(f"backend {backend} was asked for (--backend {backend}) but did not come up: {reason}")
    pytest.skip(f"backend {backend} unavailable: {reason}")


@pytest.fixture(scope="session")
def mesh_backend(request: pytest.FixtureRequest) -> str:
    """The backend's name: ``--backend``, or ``docker`` when not given."""
    return options.backend_name(request.config.getoption("backend"))


@pytest.fixture(scope="session")
def mesh_cluster(request: pytest.FixtureRequest, mesh_backend: str) -> Iterator[Cluster]:
    """One cluster for the session with the mesh installed (images built and loaded first); removed
    at the end unless ``--keep``."""
    backend_options = options.backend_options(request.config.getoption)
    try:
        cluster = create(mesh_backend, backend_options)
    except UnknownBackend as exc:
        raise pytest.UsageError(str(exc)) from None
    except BackendUnavailable as exc:
        _unavailable(request, mesh_backend, str(exc))
    try:
        prepare(
            cluster,
            base_image=backend_options.base_image,
            progress=lambda line: print(f"[egress-mesh] {line}", flush=True),
        )
    except BackendUnavailable as exc:
        cluster.down(keep=backend_options.keep)
        _unavailable(request, mesh_backend, str(exc))
    except BaseException:
        cluster.down(keep=backend_options.keep)
        raise
    yield cluster
    cluster.down(keep=backend_options.keep)


@pytest.fixture(scope="session")
def scenario_report(request: pytest.FixtureRequest) -> RunResult:
    """Every scenario result of the session, in run order (``--report FILE.json`` writes it)."""
    return request.config.stash[STATE].run


@pytest.fixture
def run_scenario(mesh_cluster: Cluster, scenario_report: RunResult) -> Callable[..., ScenarioResult]:
    """``run_scenario(scenario)`` runs a ``Scenario``, a scenario file (``Path``) or a catalog name on
    the session's cluster (reset first), records it for ``--report`` and returns its result. With
    ``check=True`` (the default) a failed scenario fails the test with the failing step's command,
    expected and actual, and a scenario the backend cannot run (or a step of it) skips the test."""

    def run(scenario: Scenario | Path | str, *, check: bool = True) -> ScenarioResult:
        loaded = scenario if isinstance(scenario, Scenario) else load(scenario)
        result = run_and_record(mesh_cluster, loaded, scenario_report)
        if check:
            check_result(result)
        return result

    return run


@pytest.fixture
def mesh(mesh_cluster: Cluster) -> MeshHarness:
    """Step-level helpers (``apply``, ``run``, ``request``, ``pod_log``, ``gateway_records``, ...) on the
    session's cluster, reset to "mesh just installed" first (see scenarios.harness)."""
    mesh_cluster.reset()
    return MeshHarness(mesh_cluster)
