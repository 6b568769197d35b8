"""The runner: scenarios on a ``Cluster``, every step a ``StepResult``, observers told as it happens.

Each scenario starts from "mesh just installed" (``cluster.reset()``); a failing setup step stops
it (the rest are reported as skipped); checking steps are retried until their expectation holds
or their timeout runs out (a log check's absences hold only on a read made ``SETTLE_TIME`` after the
step started); ``{{name}}`` in a step is filled in from earlier ``set`` steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_delay

from scenarios.clusters.base import Cluster, Unsupported
from scenarios.format import GatewayLogStep, LogStep, Scenario, Step, resolved
from scenarios.runner.actions import ONCE, ONE_CHECK, RETRIED, Attempt, LogSource, ScenarioState
from scenarios.runner.commands import kubectl_command
from scenarios.runner.results import Observer, RunResult, ScenarioResult, StepResult

POLL_INTERVAL = 0.3
#: a log step passes on what is *not* in the log only from a read made this long after it started:
#: the gateway writes a request's record up to ~10 ms after the response (docs/gateway.md), a
#: sidecar at the end of its event-loop turn, and ``docker logs`` / ``kubectl logs`` lag a little more
SETTLE_TIME = 0.5
#: what a step waiting for its settle time shows (the problem of its ``step_attempt``)
UNCONFIRMED = (
    f"right so far; reading again {SETTLE_TIME:g}s after the step started, in case something unwanted is late"
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Runner:
    def __init__(
        self,
        cluster: Cluster,
        observers: Iterable[Observer] = (),
        *,
        reset: bool = True,
        poll_interval: float | None = None,
    ) -> None:
        self.cluster = cluster
        self.observers = list(observers)
        self.reset = reset
        self.poll_interval = POLL_INTERVAL if poll_interval is None else poll_interval

    def _emit(self, event: str, *args: Any) -> None:
        for observer in self.observers:
            getattr(observer, event)(*args)

    def run(self, scenarios: Sequence[Scenario]) -> RunResult:
        result = RunResult(backend=self.cluster.name, started=now()[:19] + "+00:00")
        start = time.monotonic()
        self._emit("run_started", scenarios, self.cluster)
        for scenario in scenarios:
            result.scenarios.append(self.run_scenario(scenario))
        result.duration = time.monotonic() - start
        self._emit("run_finished", result)
        return result

    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        result = ScenarioResult(scenario, started=now())
        start = time.monotonic()
        self._emit("scenario_started", scenario)
        missing = sorted(set(scenario.requires) - set(self.cluster.capabilities))
        state = ScenarioState(self.cluster, poll_interval=self.poll_interval)
        if missing:
            result.skipped = f"backend {self.cluster.name} lacks {', '.join(missing)}"
        else:
            try:
                if self.reset:
                    self.cluster.reset()
                state.marks = {source: state.log_lines(source) for source in _log_sources(scenario)}
            except Exception as exc:  # a broken backend must end up in the report, not as a traceback
                result.error = f"reset failed: {exc}"
            stop_reason = result.error
            try:
                for step in scenario.steps:
                    step_result = self._run_step(scenario, step, state, stop_reason)
                    result.steps.append(step_result)
                    if step_result.failed and step.setup and stop_reason is None:
                        stop_reason = f"not run: step {step.index} ({step.kind}) failed"
            finally:
                state.stop_background()
        result.duration = time.monotonic() - start
        self._emit("scenario_finished", scenario, result)
        return result

    def _run_step(
        self, scenario: Scenario, step: Step, state: ScenarioState, stop_reason: str | None
    ) -> StepResult:
        step = resolved(step, state.values)
        kubectl = kubectl_command(step, scenario)
        result = StepResult(
            scenario=scenario.name,
            index=step.index,
            kind=step.kind,
            title=step.title,
            narration=step.narration,
            kubectl=kubectl,
            expected=step.expected(),
            step=step,
        )
        self._emit("step_started", scenario, step, kubectl)
        start = time.monotonic()
        if stop_reason:
            result.skipped = stop_reason
        else:
            try:
                attempt = self._execute(scenario, step, state, result)
                result.passed = attempt.passed
                result.command = attempt.command
                result.actual = attempt.actual
                result.problems = attempt.problems
                result.output = attempt.output
            except Unsupported as exc:
                result.skipped = f"unsupported on {self.cluster.name}: {exc}"
            except TimeoutError as exc:
                result.problems = [f"timed out: {exc}"]
            except Exception as exc:  # report it as the step's failure, keep going
                result.problems = [f"{type(exc).__name__}: {exc}"]
        result.duration = time.monotonic() - start
        self._emit("step_finished", scenario, step, result)
        return result

    def _execute(self, scenario: Scenario, step: Step, state: ScenarioState, result: StepResult) -> Attempt:
        kind = type(step)
        if kind in ONCE:
            return ONCE[kind](state, step)
        if kind in ONE_CHECK:
            return ONE_CHECK[kind](state, step)
        attempt = self._retry(scenario, step, result, lambda: RETRIED[kind](state, step), step.timeout)
        state.marks.update(attempt.marks)
        return attempt

    def _retry(
        self,
        scenario: Scenario,
        step: Step,
        result: StepResult,
        attempt_once: Callable[[], Attempt],
        timeout: float,
    ) -> Attempt:
        """Try ``attempt_once()`` until it passes or ``timeout`` runs out; return the last attempt.

        A pass that rests on something absent from a log (``checks_absence``) counts only from a read
        begun ``SETTLE_TIME`` after the first try: an earlier one is read again then, even past
        ``timeout``. A failure that cannot turn into a pass (``final``) ends the tries at once."""
        count = 0
        settled = time.monotonic() + SETTLE_TIME
        unconfirmed = False  # the last attempt passed on an absence, read before ``settled``

        def attempt() -> Attempt:
            nonlocal count, unconfirmed
            count += 1
            result.attempts = count
            started = time.monotonic()
            try:
                outcome = attempt_once()
            except Unsupported:
                raise
            except Exception as exc:  # e.g. the pod is not there yet: try again until the timeout
                outcome = Attempt(False, "", {"error": str(exc)}, [f"{type(exc).__name__}: {exc}"])
            unconfirmed = outcome.passed and outcome.checks_absence and started < settled
            return outcome

        def again(outcome: Attempt) -> bool:
            return unconfirmed or not (outcome.passed or outcome.final)

        def wait(retry_state: Any) -> float:
            return max(0.0, settled - time.monotonic()) if unconfirmed else self.poll_interval

        timed_out = stop_after_delay(timeout)

        def before_sleep(retry_state: Any) -> None:
            last = retry_state.outcome.result()
            interim = replace(
                result,
                command=last.command,
                actual=last.actual,
                problems=[UNCONFIRMED] if unconfirmed else last.problems,
                output=last.output,
                attempts=count,
            )
            self._emit("step_attempt", scenario, step, count, interim)

        retrying = Retrying(
            stop=lambda retry_state: not unconfirmed and timed_out(retry_state),
            wait=wait,
            retry=retry_if_result(again),
            retry_error_callback=lambda retry_state: retry_state.outcome.result(),
            before_sleep=before_sleep,
        )
        return retrying(attempt)


def _log_sources(scenario: Scenario) -> set[LogSource]:
    """Every log a step of the scenario reads: its line count at the start is the step's mark."""
    return {
        (s.namespace, s.selector, s.container)
        for s in scenario.steps
        if isinstance(s, GatewayLogStep | LogStep)
    }
