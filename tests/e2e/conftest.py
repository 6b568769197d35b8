"""The e2e cluster: one per session, on the backend chosen by ``--backend`` (default docker).

Images are built (content-tagged, so unchanged images are reused) and loaded, the cluster is
started and the mesh installed once; each scenario then starts from a known state (the runner
resets the cluster first). ``--keep`` leaves everything running for debugging.

A backend asked for with ``--backend`` (as nox and CI do) that cannot come up is an error of
every e2e test, never a skip: a run that was meant to exercise kind must not pass having run
nothing. Without ``--backend`` (a plain ``pytest`` on a laptop) an unavailable Docker backend
skips with the reason (and fails under ``--require-all``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from rich.console import Console

from scenarios.clusters import UnknownBackend, create
from scenarios.clusters import options as backend_flags
from scenarios.clusters.base import BackendUnavailable, Cluster
from scenarios.runner import ConsoleObserver, Runner, RunResult, prepare


def pytest_addoption(parser):
    # The backend options (--backend, --k8s-version, --cluster-name, --reuse, ...) are the
    # top-level conftest's, shared with `python -m scenarios run`; the report is e2e's own:
    # nox -s "e2e(backend='kind')" -- --k8s-version 1.36 --report report.json
    group = parser.getgroup("egress-mesh e2e")
    group.addoption("--report", default=None, metavar="FILE.json", help="write the JSON report of every step")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "backends(*names): applies to these backends only (deselected, not skipped, on others)"
    )


def pytest_collection_modifyitems(config, items):
    backend = backend_flags.backend_name(config.getoption("backend"))
    elsewhere = [i for i in items if (m := i.get_closest_marker("backends")) and backend not in m.args]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [i for i in items if i not in elsewhere]


@pytest.fixture(scope="session")
def backend_name(request) -> str:
    return backend_flags.backend_name(request.config.getoption("backend"))


def _unavailable(request, backend: str, reason: str):
    if request.config.getoption("backend") is not None:
        pytest.fail(f"backend {backend} was asked for (--backend {backend}) but did not come up: {reason}")
    pytest.skip(f"backend {backend} unavailable: {reason}")


@pytest.fixture(scope="session")
def cluster(request, backend_name) -> Iterator[Cluster]:
    options = backend_flags.backend_options(request.config.getoption)
    try:
        cluster = create(backend_name, options)
    except UnknownBackend as exc:
        raise pytest.UsageError(str(exc)) from None
    except BackendUnavailable as exc:
        _unavailable(request, backend_name, str(exc))
    try:
        prepare(
            cluster, base_image=options.base_image, progress=lambda line: print(f"[e2e] {line}", flush=True)
        )
    except BackendUnavailable as exc:
        cluster.down(keep=options.keep)
        _unavailable(request, backend_name, str(exc))
    except BaseException:
        cluster.down(keep=options.keep)
        raise
    yield cluster
    cluster.down(keep=options.keep)


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
