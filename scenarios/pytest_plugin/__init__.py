"""The egress-mesh pytest plugin: ``pip install egress-mesh[harness]`` registers it (entry point
``pytest11``), so ``pytest my-checks/`` can

- collect scenario files (``*.scenario.yaml``, or the ini option ``scenario_files``) as tests, one
  item per scenario, whose failure report shows the failing step's command, expected and actual;
- use the fixtures ``mesh_cluster`` (one mesh cluster per session on ``--backend``),
  ``run_scenario`` (run a scenario object, file or catalog name), ``mesh`` (step-level helpers on a
  freshly reset cluster) and ``scenario_report`` (the session's results, written by ``--report``).

Options (shared with ``python -m scenarios run``): ``--backend``, ``--k8s-version``,
``--cluster-name``, ``--reuse``, ``--keep``, ``--kubeconfig``, ``--registry``, ``--external``,
``--base-image``, ``--report``; plus ``--require-all``. See docs/scenarios.md, "As pytest tests".
"""

from __future__ import annotations

from fnmatch import fnmatch

import pytest

from scenarios import options
from scenarios.names import SCENARIO_FILE_PATTERN
from scenarios.pytest_plugin.fixtures import (  # noqa: F401  (pytest finds fixtures by name here)
    mesh,
    mesh_backend,
    mesh_cluster,
    run_scenario,
    scenario_report,
)
from scenarios.pytest_plugin.items import ScenarioFile
from scenarios.pytest_plugin.session import STATE, SessionState

#: tests with these marks skip on machines without root, Docker or a backend; under --require-all
#: (CI sets EGRESS_MESH_REQUIRE_ALL=1) such a skip is a failure, so a broken setup cannot pass by
#: running nothing
ENVIRONMENT_MARKS = ("root", "docker", "e2e")
MARKERS = (
    "e2e: end-to-end scenario runs on a backend (scenario files get it automatically)",
    "docker: needs a running Docker engine; skipped otherwise",
    "root: needs root (network namespaces, iptables); skipped otherwise",
    "backends(*names): applies to these backends only (deselected, not skipped, on others)",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("egress-mesh", "egress-mesh harness")
    options.add_run_options(group.addoption, backend_default=None)
    group.addoption(
        "--require-all",
        action="store_true",
        default=options.require_all_default(),
        help="fail (instead of skip) root, Docker and e2e tests whose environment is missing "
        f"(default on when {options.REQUIRE_ALL_ENV}=1, as in CI)",
    )
    parser.addini(
        "scenario_files",
        type="args",
        default=[SCENARIO_FILE_PATTERN],
        help=f"glob patterns of scenario files collected as tests (default {SCENARIO_FILE_PATTERN})",
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    config.stash[STATE] = SessionState(options.backend_name(config.getoption("backend")))


def pytest_collect_file(file_path, parent):
    if any(fnmatch(file_path.name, pattern) for pattern in parent.config.getini("scenario_files")):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = options.backend_name(config.getoption("backend"))
    elsewhere = [i for i in items if (m := i.get_closest_marker("backends")) and backend not in m.args]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [i for i in items if i not in elsewhere]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if not report.skipped or not item.config.getoption("require_all"):
        return report
    if any(item.get_closest_marker(mark) for mark in ENVIRONMENT_MARKS):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but --require-all is set: {reason}"
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    path = session.config.getoption("report")
    if state is not None and path and state.run.scenarios:
        from scenarios import report

        report.write(state.finished(), path)
