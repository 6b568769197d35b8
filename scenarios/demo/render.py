"""Live rendering of the walkthrough on a terminal (or a pipe, or a recording).

Colour and animation only on a colour terminal; with ``NO_COLOR`` set or without a TTY the
output has no ANSI escape codes at all: plain lines a log file or a screen reader can take.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.control import Control
from rich.highlighter import JSONHighlighter
from rich.rule import Rule
from rich.segment import ControlType
from rich.status import Status
from rich.syntax import Syntax
from rich.text import Text

from scenarios.clusters.base import OpResult
from scenarios.demo import matrix
from scenarios.demo.model import DemoRun, StepNotes
from scenarios.demo.text import MODES, POLICIES, pick, t
from scenarios.format import Scenario, Step
from scenarios.runner import ScenarioResult, StepResult

#: colours the status lines of curl's output (display only: results come from the runner's data)
STATUS_LINE = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})\b.*$")

SETUP_HINTS = {
    "docker": [
        "python -m scenarios images   (builds the images, printing every build step)",
        "docker ps -a --filter label=egress-mesh.io/harness   (the containers and their state)",
        "docker logs CONTAINER",
    ],
    "kubernetes": [
        "python -m scenarios images   (builds the images, printing every build step)",
        "kubectl get pods -A",
        "kubectl logs -n osm-system -l app=osm-controller",
    ],
}


def wants_plain(stream: IO[str]) -> bool:
    return "NO_COLOR" in os.environ or not (hasattr(stream, "isatty") and stream.isatty())


def make_console(stream: IO[str] | None = None, plain: bool | None = None) -> Console:
    stream = stream or sys.stdout
    if plain is None:
        plain = wants_plain(stream)
    if plain:
        width = int(os.environ.get("COLUMNS", "0") or 0) or 120
        return Console(
            file=stream, color_system=None, force_terminal=False, force_interactive=False, width=width
        )
    return Console(file=stream, force_terminal=True)


def pretty_json(record: dict[str, Any]) -> str:
    """A record as ``jq`` prints it: 2-space indent, keys in their order, non-ASCII kept."""
    return json.dumps(record, indent=2, ensure_ascii=False)


class LiveRenderer:
    def __init__(
        self,
        console: Console,
        lang: str = "en",
        pause: bool = False,
        stdin: IO[str] | None = None,
    ) -> None:
        self.console = console
        self.lang = lang
        self.pause = pause
        self.stdin = stdin if stdin is not None else sys.stdin
        self.animated = console.is_terminal and console.color_system is not None
        self._mode: str | None = None
        self._status: Status | None = None

    # helpers ----------------------------------------------------------------------------------
    def _t(self, key: str, **values: object) -> str:
        return t(key, self.lang, **values)

    def line(self, text: str | Text = "", style: str | None = None) -> None:
        self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    @contextmanager
    def waiting(self, what: str) -> Iterator[Callable[[str], None]]:
        """Show that ``what`` is in progress; the yielded callback reports finer progress."""
        started = time.monotonic()
        if self.animated:
            status = self.console.status(Text(f"{what}…"), spinner="dots")
            status.start()

            def progress(message: str) -> None:
                status.update(Text(f"{what}: {message}"))

        else:
            status = None
            self.line(f"... {what}")

            def progress(message: str) -> None:
                self.line(f"    {message}")

        try:
            yield progress
        except BaseException:
            if status is not None:
                status.stop()
            self.line(f"✗ {what} ({time.monotonic() - started:.1f} s)", style="bold red")
            raise
        if status is not None:
            status.stop()
        self.line(f"✓ {what} ({time.monotonic() - started:.1f} s)", style="green")

    # the run ------------------------------------------------------------------------------------
    def banner(self, run: DemoRun) -> None:
        self.console.print(Rule(Text(self._t("title"), style="bold"), style="cyan"))
        self.line(f"{self._t('backend')}: {run.backend}", style="dim")

    def scenario_started(self, scenario: Scenario) -> None:
        mode, policy = scenario.mode, scenario.policy
        if mode and mode != self._mode:
            self.line()
            self.console.print(
                Rule(Text(pick(MODES[mode], self.lang), style="bold magenta"), style="magenta")
            )
        self._mode = mode
        heading = pick(POLICIES[policy], self.lang) if policy else ""
        title = scenario.title.get(self.lang) or scenario.name
        self.line()
        self.line(Text.assemble(("## ", "bold"), (heading or title, "bold cyan")))
        if heading and title != heading:
            self.line(f"   {title} ({scenario.name})", style="dim")

    def scenario_finished(self, result: ScenarioResult) -> None:
        self.stop_status()
        if result.skipped:
            self.line(f"↷ {self._t('skipped')}: {result.skipped}", style="yellow")
        if result.error:
            self.line(f"✗ {result.scenario.name}: {result.error}", style="bold red")

    def error(self, message: str) -> None:
        self.stop_status()
        self.line(f"error: {message}", style="bold red")

    def setup_failed(self, message: str, backend: str) -> None:
        """The backend could not be set up: what failed and where to look."""
        self.error(message)
        for hint in SETUP_HINTS.get(backend, SETUP_HINTS["kubernetes"]):
            self.line(f"  {self._t('look_further')}: {hint}", style="yellow")

    def step_started(self, step: Step, kubectl: str, repeat: bool = False) -> None:
        if repeat:
            return
        self.line()
        narration = step.narration.get(self.lang) or (step.title.get(self.lang) if step.title else "")
        if narration:
            self.line(narration.strip(), style="italic")
        if kubectl:
            self.command(kubectl)
        if self.pause and not self._wait_for_enter():
            self.pause = False
            self.line(self._t("stdin_closed"), style="dim")
        first = kubectl.splitlines()[0] if kubectl else step.kind
        self._start_status(f"{self._t('running')}: {first[:90]}…")

    def command(self, command: str) -> None:
        """``$ command``; an inline manifest (``<<EOF`` heredoc) is shown as highlighted YAML."""
        first, *rest = command.splitlines()
        self.line(Text.assemble(("$ ", "bold green"), (first, "bold")))
        if not rest:
            return
        body, last = (rest[:-1], rest[-1]) if rest[-1] == "EOF" else (rest, None)
        if self.console.color_system is not None and body:
            self.console.print(
                Syntax("\n".join(body), "yaml", theme="ansi_dark", background_color="default"), soft_wrap=True
            )
        else:
            for line in body:
                self.line(line)
        if last:
            self.line(Text(last, style="bold"))

    def ran(self, command: str) -> None:
        """What the backend ran (dim, indented under the article's command)."""
        for n, line in enumerate(command.splitlines()):
            self.line(f"  {'↳' if n == 0 else ' '} {line}", style="dim")

    def _start_status(self, message: str) -> None:
        if self.animated:
            self._status = self.console.status(Text(message), spinner="dots")
            self._status.start()

    def step_attempt(self, attempt: int, problems: list[str]) -> None:
        """A step that waits for its expectation is trying again: say what it is waiting on."""
        if self._status is not None:
            reason = "; ".join(problems)[:100]
            self._status.update(Text(f"{self._t('waiting_on')}: {reason} (#{attempt})"))

    def _wait_for_enter(self) -> bool:
        """Wait for Enter; False when stdin is closed (then the demo goes on without pauses)."""
        self.console.print(Text(f"⏎ {self._t('press_enter')}", style="dim"), end="", markup=False)
        self.console.file.flush()
        line = self.stdin.readline()
        if not (hasattr(self.stdin, "isatty") and self.stdin.isatty()):
            self.line()
        elif self.animated and line:
            # the terminal echoed Enter: take the prompt line away again
            self.console.control(Control.move_to_column(0, -1), Control((ControlType.ERASE_IN_LINE, 2)))
        return line != ""

    def step_finished(self, step: StepResult, notes: StepNotes | None = None) -> None:
        self.stop_status()
        notes = notes or StepNotes()
        if notes.repeat and not step.failed:
            mark = "↷" if step.skipped else "✓"
            first = step.kubectl.splitlines()[0] if step.kubectl else step.kind
            self.line(f"{mark} {first} ({step.duration:.1f} s)", style="dim")
            return
        if notes.repeat:
            self.line()
            self.command(step.kubectl)
        if step.skipped:
            self.line(f"↷ {self._t('skipped')}: {step.skipped}", style="yellow")
            return
        if step.command and step.command != step.kubectl:
            self.ran(step.command)
        self.output(step)
        tries = f", {step.attempts}x" if step.attempts > 1 else ""
        if step.failed:
            self.line(f"✗ {self._t('failed')} ({step.duration:.1f} s{tries})", style="bold red")
            self.failure(step, notes)
        else:
            self.line(f"✓ {self._t('passed')} ({step.duration:.1f} s{tries})", style="green")

    def setup_op_failed(self, op: OpResult) -> None:
        """A command of the setup (image load, mesh install) failed: it, its output, its exit code."""
        self.line()
        self.command(op.command)
        for line in (op.stdout + op.stderr).rstrip().splitlines():
            self.line(line)
        self.line(f"✗ {self._t('failed')}: {self._t('exit_code')} {op.exit_code}", style="bold red")

    def output(self, step: StepResult) -> None:
        records = step.actual.get("records") if isinstance(step.actual, dict) else None
        if step.kind == "gateway_log" and records is not None:
            highlighter = JSONHighlighter()
            for record in records:
                text = Text(pretty_json(record))
                if self.console.color_system is not None:
                    highlighter.highlight(text)
                self.line(text)
        elif step.output.strip():
            for raw in step.output.rstrip().splitlines():
                line = raw.rstrip("\r")
                match = STATUS_LINE.match(line.strip())
                if match:
                    code = int(match.group(1))
                    self.line(line, style="bold green" if code < 400 else "bold yellow")
                else:
                    self.line(line)
        if step.exit_code not in (None, 0) and "exit code" not in step.output:
            self.line(f"command terminated with exit code {step.exit_code}", style="red")

    def failure(self, step: StepResult, notes: StepNotes) -> None:
        for problem in step.problems:
            self.line(f"  - {problem}", style="red")
        if step.expected is not None:
            self.line(f"  {self._t('expected')}: {compact(step.expected)}", style="red")
        if step.actual is not None:
            self.line(f"  {self._t('actual')}:   {compact(step.actual)}", style="red")
        for hint in notes.hints:
            self.line(f"  {self._t('look_further')}: {hint}", style="yellow")
        for line in notes.log_tail.splitlines():
            self.line(f"    │ {line}", style="dim")

    def summary(self, run: DemoRun) -> None:
        self.stop_status()
        self.line()
        self.console.print(matrix.to_table(run))
        ok, lines = matrix.verdict(run)
        for line in lines:
            self.line(line, style="bold green" if ok else "bold red")
        for op in run.failed_setup:
            self.line(f"  ✗ {self._t('setup_step')}: {op.command.splitlines()[0]}", style="red")
        for step in run.failed_steps:
            first = step.kubectl.splitlines()[0] if step.kubectl else ""
            self.line(f"  ✗ {step.scenario} #{step.index} {step.kind}: {first}", style="red")


def compact(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
