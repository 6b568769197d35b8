"""Top-level pytest options and policy shared by every test directory."""

from __future__ import annotations

import os

import pytest

from scenarios.clusters import options as backend_flags

#: Tests with these marks skip on machines without root, Docker or a backend. Where the
#: environment promises them (CI sets EGRESS_MESH_REQUIRE_ALL=1), such a skip is a failure, so a
#: broken setup cannot pass by running nothing.
ENVIRONMENT_MARKS = ("root", "docker", "e2e")


def pytest_addoption(parser):
    group = parser.getgroup("egress-mesh")
    # The backend options of `python -m scenarios run` (one table); --backend defaults to None here
    # so tests/e2e can tell a backend the user asked for (it must come up) from the default.
    backend_flags.add_to_parser(group.addoption, backend_default=None)
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
