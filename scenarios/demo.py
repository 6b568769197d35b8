"""The live walkthrough: ``python -m scenarios demo [--backend docker] [--auto | --pause] [--lang en|zh]``.

Replays the article's catalog on a backend: a heading per part, each step's narration, the
command (as the article writes it, and what this backend ran), its real output, and at the end
the summary matrix, optionally written as a Markdown report. See ``docs/demo.md``.

Exit codes: 0 every step passed and every result matches the article, 1 a step failed or a
result differs, 2 usage or scenario-file error, 3 the backend is unavailable or could not be
set up, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from scenarios import demo_matrix, demo_report
from scenarios.__main__ import (
    EXIT_BACKEND,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    add_backend_arguments,
    backend_options,
)
from scenarios.clusters import UnknownBackend, create
from scenarios.clusters.base import BackendUnavailable, Cluster, MeshOptions, OpResult
from scenarios.demo_model import DemoRun, ScenarioView, StepView
from scenarios.demo_render import LiveRenderer, make_console
from scenarios.demo_text import t
from scenarios.format import Scenario, ScenarioError, Step, load_all
from scenarios.runner import Observer, ScenarioResult, StepResult

#: setup steps that every scenario repeats: shown in full once, then as one line
REPEATABLE_KINDS = frozenset({"run", "wait", "delete", "apply"})
LOG_TAIL_LINES = 8


class StopDemo(Exception):
    """--stop-on-failure: a step failed; unwinds the runner so the demo ends cleanly."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios demo",
        description="The live walkthrough of the osm-edge egress article on a backend.",
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="NAME|FILE",
        help="scenarios to replay (default: the article's catalog)",
    )
    add_backend_arguments(parser)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--auto", action="store_true", help="run straight through (default without a TTY)")
    pace.add_argument("--pause", action="store_true", help="wait for Enter before each step")
    parser.add_argument("--lang", choices=["en", "zh"], default="en", help="narration language")
    parser.add_argument("--report", metavar="FILE.md", help="also write the run as a Markdown report")
    parser.add_argument(
        "--stop-on-failure", action="store_true", help="stop cleanly after the first failed step"
    )
    return parser


def pause_wanted(args: argparse.Namespace, stdin=None) -> bool:
    if args.pause or args.auto:
        return bool(args.pause)
    stdin = stdin if stdin is not None else sys.stdin
    return bool(stdin is not None and hasattr(stdin, "isatty") and stdin.isatty())


def _text(value) -> dict[str, str] | None:
    return value.to_dict() if value is not None else None


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class DemoObserver(Observer):
    """Turns runner events into the demo's records and renders them as they happen."""

    def __init__(
        self, renderer: LiveRenderer, run: DemoRun, cluster: Cluster, stop_on_failure: bool = False
    ) -> None:
        self.renderer = renderer
        self.run = run
        self.cluster = cluster
        self.stop_on_failure = stop_on_failure
        self._seen: set[tuple[str, str]] = set()
        self._scenario: ScenarioView | None = None
        self._step: StepView | None = None

    def scenario_started(self, scenario: Scenario) -> None:
        self._scenario = ScenarioView(scenario.name, _text(scenario.title))
        self.run.scenarios.append(self._scenario)
        self.renderer.scenario_started(self._scenario)

    def step_started(self, scenario: Scenario, step: Step, kubectl: str) -> None:
        key = (step.kind, kubectl)
        repeat = step.kind in REPEATABLE_KINDS and "<<EOF" not in kubectl and key in self._seen
        self._seen.add(key)
        self._step = StepView(
            scenario.name,
            step.index,
            step.kind,
            kubectl,
            narration=_text(step.narration),
            title=_text(step.title),
            urls=list(getattr(step, "urls", []) or []),
            repeat=repeat,
        )
        self.renderer.step_started(self._step)

    def step_attempt(self, scenario: Scenario, step: Step, attempt: int, result: StepResult) -> None:
        if self._step is not None:
            self.renderer.step_attempt(self._step, attempt, result.problems)

    def step_finished(self, scenario: Scenario, step: Step, result: StepResult) -> None:
        view = self._step or StepView(scenario.name, step.index, step.kind, result.kubectl)
        self._step = None
        actual = result.actual if isinstance(result.actual, dict) else {}
        view.backend_command = result.command
        view.stdout = result.output
        view.exit_code = actual.get("exit_code")
        view.expected, view.actual = result.expected, result.actual
        view.passed, view.skipped = result.passed, result.skipped
        view.duration, view.attempts, view.problems = result.duration, result.attempts, list(result.problems)
        if view.failed:
            self._look_further(step, view)
        if self._scenario is not None:
            self._scenario.steps.append(view)
        self.renderer.step_finished(view)
        if view.failed and self.stop_on_failure:
            raise StopDemo(f"{scenario.name} step {step.index} ({step.kind}) failed")

    def scenario_finished(self, scenario: Scenario, result: ScenarioResult) -> None:
        if self._scenario is not None:
            self._scenario.skipped = result.skipped
            self._scenario.error = result.error
            self.renderer.scenario_finished(self._scenario, result.error)

    def _look_further(self, step: Step, view: StepView) -> None:
        """Where to look: the gateway log command, or the sidecar log of the pod the step used."""
        if step.kind == "gateway_log":
            if view.backend_command:
                view.hints.append(view.backend_command)
            return
        namespace, selector = getattr(step, "namespace", None), getattr(step, "selector", None)
        if not (namespace and selector):
            return
        try:
            op = self.cluster.logs(namespace, selector, "sidecar")
        except Exception:  # the pod may not exist at all; the step's problems already say so
            return
        view.hints.append(op.command)
        if op.stdout.strip() or op.stderr.strip():
            view.log_tail = _tail(op.stdout if op.stdout.strip() else op.stderr)


def _prep_step(op: OpResult, title: dict[str, str], index: int) -> StepView:
    return StepView(
        "setup",
        index,
        "install",
        op.command,
        title=title,
        stdout="" if op.ok else op.stdout + op.stderr,
        exit_code=op.exit_code,
        passed=op.ok,
        problems=[] if op.ok else [f"exit code {op.exit_code}"],
    )


class SetupFailed(Exception):
    pass


def prepare(cluster: Cluster, args: argparse.Namespace, renderer: LiveRenderer, run: DemoRun) -> None:
    """Build images, start the cluster, load the images, install the mesh: each a visible wait."""
    from scenarios import images  # the Docker SDK is only needed when we really build

    lang = run.lang
    with renderer.waiting(t("building_images", lang)) as progress:
        refs = images.build_all(base_image=args.base_image, progress=progress)
    with renderer.waiting(f"{t('starting_cluster', lang)} ({cluster.name})"):
        cluster.up()
    with renderer.waiting(t("loading_images", lang)) as progress:
        progress(", ".join(refs.values()))
        ops = list(cluster.load_images(list(refs.values())) or ())
    with renderer.waiting(t("installing_mesh", lang)):
        ops += list(cluster.install_mesh(MeshOptions()) or ())
    title = {"en": "Install the mesh", "zh": "安装 osm-edge"}
    for index, op in enumerate(ops, start=1):
        step = _prep_step(op, title, index)
        run.preparation.append(step)
        if step.failed:
            renderer.step_finished(step)
            raise SetupFailed(f"{op.command} exited {op.exit_code}")
    for step in run.preparation:
        renderer.ran(step.command)


def execute(args: argparse.Namespace, renderer: LiveRenderer, run: DemoRun, scenarios: list[Scenario]) -> int:
    from scenarios.runner import Runner

    cluster = create(args.backend, backend_options(args))
    interrupted = False
    try:
        try:
            prepare(cluster, args, renderer, run)
        except (BackendUnavailable, KeyboardInterrupt):
            raise
        except Exception as exc:
            renderer.setup_failed(str(exc), args.backend)
            return EXIT_BACKEND
        observer = DemoObserver(renderer, run, cluster, stop_on_failure=args.stop_on_failure)
        try:
            Runner(cluster, [observer]).run(scenarios)
        except StopDemo as stop:
            renderer.line(f"{t('stopping', run.lang)} ({stop})", style="bold red")
    except KeyboardInterrupt:
        renderer.stop_status()
        interrupted = True
    finally:
        with renderer.waiting(t("tearing_down", run.lang)):
            try:
                cluster.down(keep=args.keep)
            except Exception as exc:
                renderer.line(f"warning: removing the {args.backend} backend failed: {exc}", style="yellow")
        if args.keep:
            renderer.line(t("kept", run.lang), style="dim")
    if interrupted:
        renderer.line("interrupted", style="bold red")
        return EXIT_INTERRUPTED
    return 0 if demo_matrix.verdict(run)[0] else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    console = make_console()
    renderer = LiveRenderer(console, lang=args.lang, pause=pause_wanted(args))
    run = DemoRun(args.backend, lang=args.lang, started=datetime.now(UTC))
    try:
        scenarios = load_all(args.scenarios)
    except ScenarioError as exc:
        renderer.error(str(exc))
        return EXIT_USAGE
    renderer.banner(run)
    try:
        code = execute(args, renderer, run, scenarios)
    except UnknownBackend as exc:
        renderer.error(str(exc))
        return EXIT_USAGE
    except BackendUnavailable as exc:
        renderer.error(f"backend unavailable: {exc}")
        return EXIT_BACKEND
    if code in (0, EXIT_FAILED) or run.scenarios:
        renderer.summary(run)
    if args.report:
        try:
            path = demo_report.write(run, args.report)
        except OSError as exc:
            renderer.error(f"cannot write the report {args.report}: {exc.strerror or exc}")
            return code or EXIT_USAGE
        renderer.line(t("report_written", run.lang, path=path), style="dim")
    return code


if __name__ == "__main__":
    sys.exit(main())
