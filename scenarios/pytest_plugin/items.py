"""Scenario files as pytest items: one item per scenario, failing with the step's command,
expected and actual (as tavern does for API tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scenarios.format import Scenario, ScenarioError, load_scenarios
from scenarios.pytest_plugin.outcome import ScenarioFailed


class ScenarioFile(pytest.File):
    """A ``*.scenario.yaml`` file; a file that does not load is a collection error naming the file
    and the step."""

    def collect(self) -> Iterator[ScenarioItem]:
        try:
            scenarios = load_scenarios(self.path)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        for scenario in scenarios:
            yield ScenarioItem.from_parent(
                self, name=scenario.name, callobj=_runner(scenario), scenario=scenario
            )


def _runner(scenario: Scenario):
    def run_the_scenario(run_scenario) -> None:
        run_scenario(scenario)

    return run_the_scenario


class ScenarioItem(pytest.Function):
    """One scenario; it uses the ``run_scenario`` fixture (and so the session's ``mesh_cluster``)."""

    def __init__(self, *, scenario: Scenario, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.add_marker(pytest.mark.e2e)

    def reportinfo(self):
        return self.path, 0, f"scenario {self.scenario.name}: {self.scenario.title.en}"

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailed):
            return f"scenario {self.scenario.name} ({self.path.name}) failed\n{excinfo.value}"
        return super().repr_failure(excinfo, style=style)
