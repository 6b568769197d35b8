"""Run scenarios on a ``Cluster``: ``Runner(cluster, observers).run(scenarios)``.

Rooms: ``results`` (the result model and the Observer interface), ``commands`` (the article's
form of every step), ``actions`` (what each kind does, one try), ``checks`` (expected against
actual), ``background`` (processes kept running across steps), ``engine`` (the Runner: resets,
retries, stops) and ``console`` (the printer of ``python -m scenarios run``).
"""

from scenarios.runner.checks import check_lines, check_output, check_records, check_responses
from scenarios.runner.commands import kubectl_command
from scenarios.runner.console import ConsoleObserver
from scenarios.runner.engine import POLL_INTERVAL, SETTLE_TIME, Runner
from scenarios.runner.results import Observer, RunResult, ScenarioResult, StepResult

__all__ = [
    "POLL_INTERVAL",
    "SETTLE_TIME",
    "ConsoleObserver",
    "Observer",
    "RunResult",
    "Runner",
    "ScenarioResult",
    "StepResult",
    "check_lines",
    "check_output",
    "check_records",
    "check_responses",
    "kubectl_command",
]
