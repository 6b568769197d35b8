"""The demo as an observer of the runner: it keeps the runner's results and renders them as they
happen; for a failed step it looks up where to look further (the sidecar's log)."""

from __future__ import annotations

from scenarios.clusters.base import Cluster
from scenarios.demo.model import DemoRun, StepNotes
from scenarios.demo.render import LiveRenderer
from scenarios.format import PodStep, Scenario, Step
from scenarios.runner import Observer, ScenarioResult, StepResult
from scenarios.runner.engine import now

#: setup steps that every scenario repeats: shown in full once, then as one line
REPEATABLE_KINDS = frozenset({"run", "wait", "delete", "apply"})
LOG_TAIL_LINES = 8


class StopDemo(Exception):
    """--stop-on-failure: a step failed; unwinds the runner so the demo ends cleanly."""


class DemoObserver(Observer):
    def __init__(
        self, renderer: LiveRenderer, run: DemoRun, cluster: Cluster, stop_on_failure: bool = False
    ) -> None:
        self.renderer = renderer
        self.run = run
        self.cluster = cluster
        self.stop_on_failure = stop_on_failure
        self._seen: set[tuple[str, str]] = set()

    def scenario_started(self, scenario: Scenario) -> None:
        # the steps so far, so a run stopped in the middle still shows them
        self.run.scenarios.append(ScenarioResult(scenario, started=now()))
        self.renderer.scenario_started(scenario)

    def step_started(self, scenario: Scenario, step: Step, kubectl: str) -> None:
        key = (step.kind, kubectl)
        repeat = step.kind in REPEATABLE_KINDS and "<<EOF" not in kubectl and key in self._seen
        self._seen.add(key)
        self.run.notes_of_step(scenario.name, step.index).repeat = repeat
        self.renderer.step_started(step, kubectl, repeat)

    def step_attempt(self, scenario: Scenario, step: Step, attempt: int, result: StepResult) -> None:
        self.renderer.step_attempt(attempt, result.problems)

    def step_finished(self, scenario: Scenario, step: Step, result: StepResult) -> None:
        notes = self.run.notes_of(result)
        if result.failed:
            self._look_further(step, result, notes)
        self.run.scenarios[-1].steps.append(result)
        self.renderer.step_finished(result, notes)
        if result.failed and self.stop_on_failure:
            raise StopDemo(f"{scenario.name} step {step.index} ({step.kind}) failed")

    def scenario_finished(self, scenario: Scenario, result: ScenarioResult) -> None:
        self.run.scenarios[-1] = result
        self.renderer.scenario_finished(result)

    def _look_further(self, step: Step, result: StepResult, notes: StepNotes) -> None:
        """Where to look: the gateway log command, or the sidecar log of the pod the step used."""
        if step.kind == "gateway_log":
            if result.command:
                notes.hints.append(result.command)
            return
        if not isinstance(step, PodStep):
            return
        try:
            op = self.cluster.logs(step.namespace, step.selector, "sidecar")
        except Exception:  # the pod may not exist at all; the step's problems already say so
            return
        notes.hints.append(op.command)
        text = op.stdout if op.stdout.strip() else op.stderr
        if text.strip():
            notes.log_tail = "\n".join(text.rstrip().splitlines()[-LOG_TAIL_LINES:])
