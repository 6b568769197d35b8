"""Run scenarios on a ``Cluster``: every step becomes a ``StepResult``; observers see it happen.

Observers (the console printer below, the demo, tests) subclass ``Observer`` and get, in order:
``run_started``, then per scenario ``scenario_started``, per step ``step_started`` (with the
article-style ``kubectl`` command), ``step_attempt`` for every retry of a step that waits for an
expectation to hold, ``step_finished`` (with its result), ``scenario_finished``, and finally
``run_finished``. Results carry JSON-ready ``expected``/``actual`` data for reports.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from mesh.gateway import accesslog
from scenarios import curl
from scenarios.clusters.base import Cluster, MeshOptions, OpResult, Unsupported
from scenarios.format import (
    ApplyStep,
    DeleteStep,
    ExecStep,
    GatewayLogStep,
    PatchStep,
    PodIP,
    RecordExpectation,
    RequestStep,
    RunStep,
    Scenario,
    Step,
    Text,
    WaitStep,
)

#: step kinds whose failure stops the scenario (everything after would fail for the same reason)
SETUP_KINDS = frozenset({"apply", "delete", "patch", "run", "wait"})
POLL_INTERVAL = 0.3


@dataclass
class StepResult:
    scenario: str
    index: int
    kind: str
    title: Text | None
    narration: Text
    #: the command as the article writes it (kubectl form)
    kubectl: str
    #: what this backend ran (its OpResult.command), one line per operation
    command: str = ""
    expected: Any = None
    actual: Any = None
    passed: bool = False
    skipped: str | None = None
    duration: float = 0.0
    #: what went wrong, one line per broken expectation
    problems: list[str] = field(default_factory=list)
    #: raw output for display (stdout, then stderr)
    output: str = ""
    attempts: int = 1

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "passed" if self.passed else "failed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class ScenarioResult:
    scenario: Scenario
    steps: list[StepResult] = field(default_factory=list)
    #: the scenario did not run at all (a capability the backend lacks)
    skipped: str | None = None
    #: the scenario broke before its steps (e.g. reset failed)
    error: str | None = None
    duration: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and not any(s.failed for s in self.steps)

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "passed" if self.passed else "failed"

    def first_failure(self) -> StepResult | None:
        return next((s for s in self.steps if s.failed), None)

    def explain(self) -> str:
        """Why it failed: the failing steps with their command, expected and actual."""
        if self.error:
            return f"{self.scenario.name}: {self.error}"
        lines = []
        for step in self.steps:
            if step.failed:
                first, *rest = step.kubectl.splitlines() or [""]
                lines += [
                    f"{self.scenario.name} step {step.index} ({step.kind}) failed: {step.narration.en}",
                    f"  command:  {first}",
                    *(f"            {line}" for line in rest),
                ]
                if step.command and step.command != step.kubectl:
                    lines.append(f"  ran:      {step.command}")
                lines += [
                    f"  expected: {json.dumps(step.expected, ensure_ascii=False)}",
                    f"  actual:   {json.dumps(step.actual, ensure_ascii=False)}",
                    *(f"  - {p}" for p in step.problems),
                ]
        return "\n".join(lines)


@dataclass
class RunResult:
    backend: str
    scenarios: list[ScenarioResult] = field(default_factory=list)
    started: str = ""
    duration: float = 0.0

    @property
    def passed(self) -> bool:
        return all(s.status != "failed" for s in self.scenarios)


class Observer:
    """Receives the runner's events; override what you need."""

    def run_started(self, scenarios: Sequence[Scenario], cluster: Cluster) -> None: ...

    def scenario_started(self, scenario: Scenario) -> None: ...

    def step_started(self, scenario: Scenario, step: Step, kubectl: str) -> None: ...

    def step_attempt(self, scenario: Scenario, step: Step, attempt: int, result: StepResult) -> None:
        """A retried step did not pass yet (``result`` is that attempt's); it will try again."""

    def step_finished(self, scenario: Scenario, step: Step, result: StepResult) -> None: ...

    def scenario_finished(self, scenario: Scenario, result: ScenarioResult) -> None: ...

    def run_finished(self, result: RunResult) -> None: ...


# article-style commands ------------------------------------------------------------------------------


def _ns(namespace: str | None) -> list[str]:
    return ["-n", namespace] if namespace else []


def pod_of(namespace: str, selector: str) -> str:
    """The article's ``"$(kubectl get pod -n NS -l SEL -o jsonpath='{.items..metadata.name}')"``."""
    return f"\"$(kubectl get pod -n {namespace} -l {selector} -o jsonpath='{{.items..metadata.name}}')\""


def _display_path(file: str, scenario: Scenario) -> str:
    path = (scenario.path.parent / file).resolve() if scenario.path else Path(file)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def kubectl_command(step: Step, scenario: Scenario) -> str:
    """The command a reader of the article would type for ``step``."""
    match step:
        case ApplyStep(file=str() as file):
            return shlex.join(["kubectl", "apply", *_ns(step.namespace), "-f", _display_path(file, scenario)])
        case ApplyStep():
            args = " ".join([*_ns(step.namespace), "-f", "-"])
            return f"kubectl apply {args} <<EOF\n{step.manifest.rstrip()}\nEOF"
        case DeleteStep():
            return shlex.join(["kubectl", "delete", step.object_kind, step.name, *_ns(step.namespace)])
        case PatchStep():
            patch = json.dumps(step.patch, separators=(",", ":"))
            return shlex.join(
                ["kubectl", "patch", step.object_kind, step.name, *_ns(step.namespace), "-p", patch]
                + [f"--type={step.patch_type}"]
            )
        case RunStep():
            return shlex.join(step.argv)
        case WaitStep():
            return shlex.join(
                ["kubectl", "wait", "pod", "-n", step.namespace, "-l", step.selector]
                + ["--for=condition=Ready", f"--timeout={step.timeout:g}s"]
            )
        case RequestStep() | ExecStep():
            argv = step.argv if isinstance(step, RequestStep) else step.command
            return (
                f"kubectl exec {pod_of(step.namespace, step.selector)} -n {step.namespace} "
                f"-c {step.container} -- {shlex.join(argv)}"
            )
        case GatewayLogStep():
            container = f" -c {step.container}" if step.container else ""
            return f"kubectl logs -n {step.namespace} {pod_of(step.namespace, step.selector)}{container} | jq"
    raise TypeError(f"unknown step {step!r}")


# checks -------------------------------------------------------------------------------------------


@dataclass
class _Attempt:
    passed: bool
    command: str
    actual: Any
    problems: list[str]
    output: str = ""
    #: gateway log line counts taken just before this attempt (request steps)
    marks: dict[tuple, int] = field(default_factory=dict)


def _output(op: OpResult) -> str:
    return "\n".join(part.rstrip("\n") for part in (op.stdout, op.stderr) if part.strip())


def check_responses(step: RequestStep, op: OpResult, responses: list[curl.Response]) -> list[str]:
    problems = []
    if op.exit_code != step.expected_exit_code:
        detail = f": {op.stderr.strip()}" if op.stderr.strip() else ""
        problems.append(f"curl exit code {op.exit_code}, expected {step.expected_exit_code}{detail}")
    if step.responses is None:
        return problems
    if len(responses) != len(step.responses):
        got = ", ".join(r.status_line for r in responses) or "nothing"
        problems.append(f"{len(responses)} response(s) ({got}), expected {len(step.responses)}")
    for n, (want, got) in enumerate(zip(step.responses, responses, strict=False), start=1):
        where = f"response {n} ({step.urls[n - 1] if n <= len(step.urls) else '?'})"
        if got.status != want.status:
            problems.append(f"{where}: status {got.status}, expected {want.status}")
        if want.reason is not None and got.reason != want.reason:
            problems.append(f"{where}: reason {got.reason!r}, expected {want.reason!r}")
        for name, value in want.headers.items():
            actual = got.header(name)
            if actual != value:
                shown = "missing" if actual is None else repr(actual)
                problems.append(f"{where}: header {name} {shown}, expected {value!r}")
        if want.body is not None and got.body != want.body:
            problems.append(f"{where}: body {got.body!r}, expected {want.body!r}")
        if want.body_contains is not None and want.body_contains not in (got.body or ""):
            problems.append(f"{where}: body {got.body!r} does not contain {want.body_contains!r}")
    return problems


def _same(actual: Any, expected: Any) -> bool:
    return actual == expected or (not isinstance(actual, bool) and str(actual) == str(expected))


def _describe(fields: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fields.items())


def check_records(
    records: list[dict[str, Any]],
    present: Iterable[RecordExpectation],
    absent: Iterable[RecordExpectation],
    resolve: Callable[[PodIP], str],
) -> list[str]:
    problems = []
    for n, record in enumerate(records, start=1):
        try:
            accesslog.validate(record)
        except accesslog.InvalidRecord as exc:
            problems.append(f"record {n} breaks the access-log contract: {exc}")

    def matching(want: RecordExpectation) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        fields = {k: resolve(v) if isinstance(v, PodIP) else v for k, v in want.fields.items()}
        found = [r for r in records if all(k in r and _same(r[k], v) for k, v in fields.items())]
        return fields, found

    for want in present:
        fields, found = matching(want)
        if want.count is None and not found:
            problems.append(f"no record with {_describe(fields)}")
        elif want.count is not None and len(found) != want.count:
            problems.append(f"{len(found)} record(s) with {_describe(fields)}, expected {want.count}")
    for want in absent:
        fields, found = matching(want)
        if found:
            problems.append(
                f"{len(found)} record(s) with {_describe(fields)}, expected none: "
                f"{json.dumps(found[0], ensure_ascii=False)}"
            )
    return problems


# the runner ---------------------------------------------------------------------------------------


class Runner:
    def __init__(
        self,
        cluster: Cluster,
        observers: Iterable[Observer] = (),
        *,
        reset: bool = True,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.cluster = cluster
        self.observers = list(observers)
        self.reset = reset
        self.poll_interval = poll_interval
        self._marks: dict[tuple, int] = {}

    def _emit(self, event: str, *args: Any) -> None:
        for observer in self.observers:
            getattr(observer, event)(*args)

    def run(self, scenarios: Sequence[Scenario]) -> RunResult:
        result = RunResult(backend=self.cluster.name, started=datetime.now(UTC).isoformat(timespec="seconds"))
        start = time.monotonic()
        self._emit("run_started", scenarios, self.cluster)
        for scenario in scenarios:
            result.scenarios.append(self.run_scenario(scenario))
        result.duration = time.monotonic() - start
        self._emit("run_finished", result)
        return result

    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        result = ScenarioResult(scenario)
        start = time.monotonic()
        self._emit("scenario_started", scenario)
        missing = sorted(set(scenario.requires) - set(self.cluster.capabilities))
        if missing:
            result.skipped = f"backend {self.cluster.name} lacks {', '.join(missing)}"
        else:
            try:
                if self.reset:
                    self.cluster.reset()
                self._marks = {key: self._log_lines(*key) for key in self._log_sources(scenario)}
            except Exception as exc:  # a broken backend must end up in the report, not as a traceback
                result.error = f"reset failed: {exc}"
            stop_reason = result.error
            for step in scenario.steps:
                step_result = self._run_step(scenario, step, stop_reason)
                result.steps.append(step_result)
                if step_result.failed and step.kind in SETUP_KINDS and stop_reason is None:
                    stop_reason = f"not run: step {step.index} ({step.kind}) failed"
        result.duration = time.monotonic() - start
        self._emit("scenario_finished", scenario, result)
        return result

    def _run_step(self, scenario: Scenario, step: Step, stop_reason: str | None) -> StepResult:
        kubectl = kubectl_command(step, scenario)
        result = StepResult(
            scenario=scenario.name,
            index=step.index,
            kind=step.kind,
            title=step.title,
            narration=step.narration,
            kubectl=kubectl,
            expected=step.expected(),
        )
        self._emit("step_started", scenario, step, kubectl)
        start = time.monotonic()
        if stop_reason:
            result.skipped = stop_reason
        else:
            try:
                attempt = self._execute(scenario, step, result)
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

    def _execute(self, scenario: Scenario, step: Step, result: StepResult) -> _Attempt:
        cluster = self.cluster
        match step:
            case ApplyStep():
                return self._simple(cluster.apply(step.manifest, step.namespace))
            case DeleteStep():
                return self._simple(cluster.delete(step.object_kind, step.name, step.namespace))
            case PatchStep():
                return self._simple(
                    cluster.patch(step.object_kind, step.name, step.namespace, step.patch, step.patch_type)
                )
            case RunStep():
                return self._simple(cluster.run(step.argv), step.exit_code)
            case WaitStep():
                op = cluster.wait_ready(step.namespace, step.selector, step.timeout)
                attempt = self._simple(op)
                attempt.actual = {"ready": op.ok, "exit_code": op.exit_code}
                return attempt
            case RequestStep():
                attempt = self._retry(scenario, step, result, self._request_attempt, step.timeout)
                self._marks.update(attempt.marks)
                return attempt
            case ExecStep():
                return self._retry(scenario, step, result, self._exec_attempt, step.timeout)
            case GatewayLogStep():
                return self._retry(scenario, step, result, self._gateway_log_attempt, step.timeout)
        raise TypeError(f"unknown step {step!r}")

    def _simple(self, op: OpResult, exit_code: int = 0) -> _Attempt:
        problems = [] if op.exit_code == exit_code else [f"exit code {op.exit_code}, expected {exit_code}"]
        if problems and op.stderr.strip():
            problems.append(op.stderr.strip())
        return _Attempt(
            passed=not problems,
            command=op.command,
            actual={"exit_code": op.exit_code},
            problems=problems,
            output=_output(op),
        )

    def _retry(
        self,
        scenario: Scenario,
        step: Step,
        result: StepResult,
        attempt_once: Callable[[Any], _Attempt],
        timeout: float,
    ) -> _Attempt:
        """Try ``attempt_once(step)`` until it passes or ``timeout`` runs out; return the last attempt."""
        count = 0

        def attempt() -> _Attempt:
            nonlocal count
            count += 1
            result.attempts = count
            try:
                outcome = attempt_once(step)
            except Unsupported:
                raise
            except Exception as exc:  # e.g. the pod is not there yet: try again until the timeout
                outcome = _Attempt(False, "", {"error": str(exc)}, [f"{type(exc).__name__}: {exc}"])
            return outcome

        def before_sleep(state: Any) -> None:
            failed = state.outcome.result()
            interim = replace(
                result,
                command=failed.command,
                actual=failed.actual,
                problems=failed.problems,
                output=failed.output,
                attempts=count,
            )
            self._emit("step_attempt", scenario, step, count, interim)

        retrying = Retrying(
            stop=stop_after_delay(timeout),
            wait=wait_fixed(self.poll_interval),
            retry=retry_if_result(lambda outcome: not outcome.passed),
            retry_error_callback=lambda state: state.outcome.result(),
            before_sleep=before_sleep,
        )
        return retrying(attempt)

    # request ----------------------------------------------------------------------------------------
    def _log_sources(self, scenario: Scenario) -> set[tuple]:
        return {
            (s.namespace, s.selector, s.container) for s in scenario.steps if isinstance(s, GatewayLogStep)
        }

    def _log_lines(self, namespace: str, selector: str, container: str | None) -> int:
        """How many log lines the pod has now (0 when it does not exist yet)."""
        try:
            op = self.cluster.logs(namespace, selector, container)
        except Exception:  # no pod yet, or no logs on this backend (the gateway_log step says so)
            return 0
        return len(op.stdout.splitlines()) if op.ok else 0

    def _request_attempt(self, step: RequestStep) -> _Attempt:
        sources = {key for key in self._marks}
        marks = {key: self._log_lines(*key) for key in sources}
        op = self.cluster.exec(step.namespace, step.selector, step.container, step.argv)
        responses = curl.parse(op.stdout, head=curl.sends_head(step.curl_args))
        actual: dict[str, Any] = {"exit_code": op.exit_code, "responses": [r.to_dict() for r in responses]}
        if op.stderr.strip():
            actual["stderr"] = op.stderr.strip()[-2000:]
        problems = check_responses(step, op, responses)
        return _Attempt(not problems, op.command, actual, problems, _output(op), marks)

    def _exec_attempt(self, step: ExecStep) -> _Attempt:
        op = self.cluster.exec(step.namespace, step.selector, step.container, step.command)
        problems = []
        if op.exit_code != step.exit_code:
            problems.append(f"exit code {op.exit_code}, expected {step.exit_code}")
        for text in step.stdout_contains:
            if text not in op.stdout:
                problems.append(f"stdout does not contain {text!r}")
        if step.stdout_matches and not re.search(step.stdout_matches, op.stdout, re.MULTILINE):
            problems.append(f"stdout does not match {step.stdout_matches!r}")
        actual = {"exit_code": op.exit_code, "stdout": op.stdout[-4000:], "stderr": op.stderr[-2000:]}
        return _Attempt(not problems, op.command, actual, problems, _output(op))

    def _gateway_log_attempt(self, step: GatewayLogStep) -> _Attempt:
        op = self.cluster.logs(step.namespace, step.selector, step.container)
        if not op.ok:
            problem = f"cannot read the gateway log (exit code {op.exit_code}): {op.stderr.strip()}"
            return _Attempt(False, op.command, {"exit_code": op.exit_code}, [problem], _output(op))
        lines = op.stdout.splitlines()
        mark = self._marks.get((step.namespace, step.selector, step.container), 0)
        if mark > len(lines):  # the pod was replaced: its whole log is new
            mark = 0
        requests, _connections = accesslog.parse_lines("\n".join(lines[mark:]))
        ips: dict[PodIP, str] = {}

        def resolve(placeholder: PodIP) -> str:
            if placeholder not in ips:
                ips[placeholder] = self.cluster.pod_ip(placeholder.namespace, placeholder.selector)
            return ips[placeholder]

        problems = check_records(requests, step.present, step.absent, resolve)
        actual: dict[str, Any] = {"records": requests}
        if ips:
            actual["resolved"] = {str(k): v for k, v in ips.items()}
        output = "\n".join(json.dumps(r, ensure_ascii=False) for r in requests)
        return _Attempt(not problems, op.command, actual, problems, output)


# bringing a backend up ----------------------------------------------------------------------------


def prepare(
    cluster: Cluster,
    *,
    base_image: str | None = None,
    mesh: MeshOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Start the cluster (first: an unavailable backend fails fast), build and load the images and
    install the mesh; return the image refs."""
    from scenarios import images  # the Docker SDK is only needed once we really build

    say = progress or (lambda line: None)
    say(f"starting the {cluster.name} backend")
    cluster.up()
    say("building images (unchanged images are reused)")
    refs = images.build_all(base_image=base_image, progress=say)
    say(f"loading images: {', '.join(refs.values())}")
    _check_ops("loading images", cluster.load_images(list(refs.values())))
    say("installing the mesh")
    _check_ops("installing the mesh", cluster.install_mesh(mesh or MeshOptions()))
    return refs


def _check_ops(what: str, ops: Iterable[OpResult]) -> None:
    for op in ops or ():
        if not op.ok:
            raise RuntimeError(f"{what} failed: {op.command} exited {op.exit_code}: {_output(op)}")


# the console --------------------------------------------------------------------------------------

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
        if result.output and step.kind in ("request", "exec", "gateway_log"):
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
