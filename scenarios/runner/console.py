"""The console printer of ``python -m scenarios run`` (and of the pytest plugin's captured output):
each step, its command and its result. Colour only on a terminal without NO_COLOR."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from scenarios.format import Scenario, Step
from scenarios.runner.results import Observer, RunResult, ScenarioResult, StepResult

#: kinds whose output is printed under the step (what came back is the point of the step)
OUTPUT_KINDS = frozenset({"request", "exec", "gateway_log", "log", "set", "stop"})
_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}
_MARK = {"passed": "ok", "failed": "FAILED", "skipped": "skipped"}


class ConsoleObserver(Observer):
    """Prints each step, its command and its result. Colour only on a terminal without NO_COLOR."""

    def __init__(self, console: Console | None = None, *, lang: str = "en", verbose: bool = False) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.lang = lang
        self.verbose = verbose

    def scenario_started(self, scenario: Scenario) -> None:
        self.console.rule(f"[bold]{escape(scenario.name)}[/]: {escape(scenario.title.get(self.lang))}")

    def step_started(self, scenario: Scenario, step: Step, kubectl: str) -> None:
        total = len(scenario.steps)
        self.console.print(
            f"[bold][{step.index}/{total}][/] {escape(step.kind)}: {escape(step.narration.get(self.lang))}"
        )
        first, *rest = kubectl.splitlines()
        self.console.print(f"  [cyan]$ {escape(first)}[/]")
        for line in rest:
            self.console.print(f"    {escape(line)}")

    def step_attempt(self, scenario: Scenario, step: Step, attempt: int, result: StepResult) -> None:
        if self.verbose:
            self.console.print(f"  [dim]attempt {attempt}: {escape('; '.join(result.problems))}[/]")

    def step_finished(self, scenario: Scenario, step: Step, result: StepResult) -> None:
        if result.command and (self.verbose or result.failed) and result.command != result.kubectl:
            self.console.print(f"  [dim]ran: {escape(result.command)}[/]")
        if result.output and step.kind in OUTPUT_KINDS:
            for line in result.output.splitlines():
                self.console.print(f"    {escape(line)}")
        tries = f", {result.attempts} attempts" if result.attempts > 1 else ""
        reason = f": {result.skipped}" if result.skipped else ""
        self.console.print(
            f"  [{_STYLE[result.status]}]{_MARK[result.status]}{escape(reason)}[/] "
            f"[dim]({result.duration:.1f}s{tries})[/]"
        )
        for problem in result.problems:
            self.console.print(f"  [red]- {escape(problem)}[/]")

    def scenario_finished(self, scenario: Scenario, result: ScenarioResult) -> None:
        if result.error:
            self.console.print(f"[bold red]{escape(result.error)}[/]")
        if result.skipped:
            self.console.print(f"[yellow]skipped: {escape(result.skipped)}[/]")

    def run_finished(self, result: RunResult) -> None:
        self.console.rule("summary")
        for item in result.scenarios:
            steps = len(item.steps)
            failed = sum(1 for s in item.steps if s.failed)
            detail = f"{failed}/{steps} steps failed" if failed else f"{steps} steps"
            self.console.print(
                f"  [{_STYLE[item.status]}]{item.status:8}[/] {escape(item.scenario.name)} "
                f"[dim]({detail}, {item.duration:.1f}s)[/]"
            )
        verdict = "passed" if result.passed else "failed"
        self.console.print(
            f"[{_STYLE[verdict]}]{verdict}[/] on {escape(result.backend)} in {result.duration:.1f}s"
        )
