"""What each step kind does on the cluster: one ``Attempt`` per try, with what came back as data.

The engine (``scenarios.runner.engine``) retries the checking kinds until they pass or their
timeout runs out; here every function makes exactly one try.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from mesh.api import accesslog
from scenarios.clusters.base import Cluster, OpResult
from scenarios.format import (
    ApplyStep,
    BackgroundStep,
    DeleteStep,
    ExecStep,
    GatewayLogStep,
    LogStep,
    PatchStep,
    PodIP,
    RequestStep,
    RunStep,
    SetStep,
    Step,
    StopStep,
    WaitStep,
)
from scenarios.format.setup_steps import FromExec, FromPodIP, FromResolve
from scenarios.harness import MeshHarness
from scenarios.runner.background import BackgroundProcess
from scenarios.runner.checks import (
    check_lines,
    check_output,
    check_records,
    check_responses,
    unwanted_lines,
    unwanted_records,
)

BACKGROUND_START_TIMEOUT = 15.0
#: a log source: (namespace, selector, container)
LogSource = tuple[str, str, str | None]


@dataclass
class Attempt:
    passed: bool
    command: str
    actual: Any
    problems: list[str]
    output: str = ""
    #: log line counts taken just before this attempt (request steps)
    marks: dict[LogSource, int] = field(default_factory=dict)
    #: it checked that something is *not* in a log (an ``absent`` item, or more than a ``count``): a
    #: record still on its way could break that, so the engine confirms a pass with a read made
    #: after its settle time
    checks_absence: bool = False
    #: something that must not be in the log is there; it stays there, so trying again cannot pass
    final: bool = False


@dataclass
class ScenarioState:
    """What one scenario's steps share while it runs."""

    cluster: Cluster
    #: values of ``set`` steps, for ``{{name}}`` in later steps
    values: dict[str, str] = field(default_factory=dict)
    #: log lines each source had when the scenario started (or the last request was sent)
    marks: dict[LogSource, int] = field(default_factory=dict)
    background: dict[str, BackgroundProcess] = field(default_factory=dict)
    poll_interval: float = 0.3

    def log_lines(self, source: LogSource) -> int:
        """How many log lines the pod has now (0 when it does not exist yet)."""
        try:
            op = self.cluster.logs(*source)
        except Exception:  # no pod yet, or no logs on this backend (the log step says so)
            return 0
        return len(op.stdout.splitlines()) if op.ok else 0

    def since_mark(self, source: LogSource, lines: list[str]) -> list[str]:
        mark = self.marks.get(source, 0)
        return lines[mark:] if mark <= len(lines) else lines  # fewer lines: the pod was replaced

    def stop_background(self) -> None:
        for process in self.background.values():
            process.stop(timeout=5)
        self.background.clear()


def output_of(op: OpResult) -> str:
    return "\n".join(part.rstrip("\n") for part in (op.stdout, op.stderr) if part.strip())


def simple(op: OpResult, exit_code: int = 0) -> Attempt:
    problems = [] if op.exit_code == exit_code else [f"exit code {op.exit_code}, expected {exit_code}"]
    if problems and op.stderr.strip():
        problems.append(op.stderr.strip())
    return Attempt(not problems, op.command, {"exit_code": op.exit_code}, problems, output_of(op))


# setup kinds (one try) ------------------------------------------------------------------------------
def wait(state: ScenarioState, step: WaitStep) -> Attempt:
    op = state.cluster.wait_ready(step.namespace, step.selector, step.timeout)
    attempt = simple(op)
    attempt.actual = {"ready": op.ok, "exit_code": op.exit_code}
    return attempt


def _captured(step_value: Any, state: ScenarioState) -> tuple[str, OpResult | None]:
    """The value a ``set`` source stands for, and the command that produced it."""
    match step_value:
        case FromPodIP(pod_ip=ref):
            return state.cluster.pod_ip(ref.namespace, ref.selector), None
        case FromResolve(resolve=ref):
            op = state.cluster.exec(ref.namespace, ref.selector, ref.container, ["getent", "hosts", ref.name])
            if not op.ok or not op.stdout.split():
                raise LookupError(f"{ref.name} does not resolve in pod {ref.selector}: {output_of(op)}")
            return op.stdout.split()[0], op
        case FromExec(exec=run):
            op = state.cluster.exec(run.namespace, run.selector, run.container, run.command)
            if not op.ok:
                raise LookupError(f"exit code {op.exit_code}: {output_of(op)}")
            if run.match is None:
                return op.stdout.strip(), op
            found = re.search(run.match, op.stdout, re.MULTILINE)
            if found is None:
                raise LookupError(f"stdout does not match {run.match!r}: {op.stdout.strip()[:500]!r}")
            return (found.group(1) if found.groups() else found.group(0)), op
    if isinstance(step_value, bool):
        return str(step_value).lower(), None
    return ("" if step_value is None else str(step_value)), None


def set_values(state: ScenarioState, step: SetStep) -> Attempt:
    commands, values, problems = [], {}, []
    for name, source in step.values.items():
        try:
            value, op = _captured(source, state)
        except Exception as exc:  # the pod is missing, the command failed: say which value
            problems.append(f"{name}: {exc}")
            continue
        values[name] = value
        if op is not None:
            commands.append(op.command)
    state.values.update(values)
    output = "\n".join(f"{name}={value}" for name, value in values.items())
    return Attempt(not problems, "\n".join(commands), {"set": values}, problems, output)


def start_background(state: ScenarioState, step: BackgroundStep) -> Attempt:
    process = BackgroundProcess(state.cluster, step)
    process.start()
    state.background[step.name] = process
    retrying = Retrying(
        stop=stop_after_delay(BACKGROUND_START_TIMEOUT),
        wait=wait_fixed(state.poll_interval),
        retry=retry_if_result(lambda started: not started),
    )
    try:
        retrying(process.started)
    except RetryError:
        return Attempt(False, "", {"running": False}, [f"did not start in {BACKGROUND_START_TIMEOUT:.0f}s"])
    if process.finished and process.result is not None:
        op = process.result
        problem = f"ended at once with exit code {op.exit_code}: {output_of(op)}"
        return Attempt(
            False, op.command, {"running": False, "exit_code": op.exit_code}, [problem], output_of(op)
        )
    return Attempt(True, "", {"running": True}, [])


ONCE: dict[type[Step], Callable[[ScenarioState, Any], Attempt]] = {
    ApplyStep: lambda s, step: simple(s.cluster.apply(step.manifest, step.namespace)),
    DeleteStep: lambda s, step: simple(s.cluster.delete(step.object_kind, step.name, step.namespace)),
    PatchStep: lambda s, step: simple(
        s.cluster.patch(step.object_kind, step.name, step.namespace, step.patch, step.patch_type)
    ),
    RunStep: lambda s, step: simple(s.cluster.run(step.argv), step.exit_code),
    WaitStep: wait,
    SetStep: set_values,
    BackgroundStep: start_background,
}


# checking kinds (retried) ---------------------------------------------------------------------------
def request(state: ScenarioState, step: RequestStep) -> Attempt:
    marks = {source: state.log_lines(source) for source in state.marks}
    reply = MeshHarness(state.cluster).request(
        step.namespace, step.selector, step.container, step.urls, step.curl_args
    )
    problems = check_responses(step, reply.op, reply.responses)
    return Attempt(not problems, reply.command, reply.to_dict(), problems, output_of(reply.op), marks)


def exec_(state: ScenarioState, step: ExecStep) -> Attempt:
    op = state.cluster.exec(step.namespace, step.selector, step.container, step.command)
    problems = (
        [] if op.exit_code == step.exit_code else [f"exit code {op.exit_code}, expected {step.exit_code}"]
    )
    problems += check_output(step, op.stdout)
    actual = {"exit_code": op.exit_code, "stdout": op.stdout[-4000:], "stderr": op.stderr[-2000:]}
    return Attempt(not problems, op.command, actual, problems, output_of(op))


class _Resolver:
    """Pod IPs looked up once per attempt, and shown in the result."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.ips: dict[PodIP, str] = {}

    def __call__(self, placeholder: PodIP) -> str:
        if placeholder not in self.ips:
            self.ips[placeholder] = self.cluster.pod_ip(placeholder.namespace, placeholder.selector)
        return self.ips[placeholder]

    def shown(self, actual: dict[str, Any]) -> dict[str, Any]:
        if self.ips:
            actual["resolved"] = {str(k): v for k, v in self.ips.items()}
        return actual


def _log_lines(state: ScenarioState, source: LogSource) -> tuple[OpResult, list[str]]:
    op = state.cluster.logs(*source)
    return op, state.since_mark(source, op.stdout.splitlines()) if op.ok else []


def gateway_log(state: ScenarioState, step: GatewayLogStep) -> Attempt:
    op, lines = _log_lines(state, (step.namespace, step.selector, step.container))
    if not op.ok:
        problem = f"cannot read the gateway log (exit code {op.exit_code}): {op.stderr.strip()}"
        return Attempt(False, op.command, {"exit_code": op.exit_code}, [problem], output_of(op))
    requests, _connections = accesslog.parse_lines("\n".join(lines))
    resolve = _Resolver(state.cluster)
    unwanted = unwanted_records(requests, step.absent, resolve)
    problems = check_records(requests, step.present, (), resolve) + unwanted
    output = "\n".join(json.dumps(r, ensure_ascii=False) for r in requests)
    return _log_attempt(step, op, resolve.shown({"records": requests}), problems, output, unwanted)


def log(state: ScenarioState, step: LogStep) -> Attempt:
    op, lines = _log_lines(state, (step.namespace, step.selector, step.container))
    if not op.ok:
        problem = f"cannot read the log (exit code {op.exit_code}): {op.stderr.strip()}"
        return Attempt(False, op.command, {"exit_code": op.exit_code}, [problem], output_of(op))
    resolve = _Resolver(state.cluster)
    unwanted = unwanted_lines(lines, step.absent, resolve)
    problems = check_lines(lines, step.present, (), resolve) + unwanted
    actual = resolve.shown({"lines": lines[-200:]})
    return _log_attempt(step, op, actual, problems, "\n".join(lines[-30:]), unwanted)


def _log_attempt(
    step: GatewayLogStep | LogStep,
    op: OpResult,
    actual: dict[str, Any],
    problems: list[str],
    output: str,
    unwanted: list[str],
) -> Attempt:
    """A log step's attempt. What it says is *not* in the log (``absent`` items, and no more than
    ``count`` of a ``present`` item) is confirmed by a read after the settle time; an unwanted
    record or line is there for good, so it fails the step at once."""
    limits = bool(step.absent) or any(item.count is not None for item in step.present)
    return Attempt(
        not problems, op.command, actual, problems, output, checks_absence=limits, final=bool(unwanted)
    )


def stop(state: ScenarioState, step: StopStep) -> Attempt:
    process = state.background.pop(step.name)
    running = process.running()
    op = process.stop(step.timeout)
    actual: dict[str, Any] = {"running": running}
    problems = []
    if step.running is not None and running != step.running:
        problems.append("it was still running" if running else "it had already ended")
    if op is None:
        problems.append(f"it did not end within {step.timeout:g}s of being stopped")
        return Attempt(False, "", actual, problems)
    actual |= {"exit_code": op.exit_code, "stdout": op.stdout[-4000:], "stderr": op.stderr[-2000:]}
    if step.exit_code is not None and op.exit_code != step.exit_code:
        problems.append(f"exit code {op.exit_code}, expected {step.exit_code}")
    problems += check_output(step, op.stdout)
    return Attempt(not problems, op.command, actual, problems, output_of(op))


RETRIED: dict[type[Step], Callable[[ScenarioState, Any], Attempt]] = {
    RequestStep: request,
    ExecStep: exec_,
    GatewayLogStep: gateway_log,
    LogStep: log,
}
ONE_CHECK: dict[type[Step], Callable[[ScenarioState, Any], Attempt]] = {StopStep: stop}
