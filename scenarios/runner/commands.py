"""Every step as the article (and a reader at a shell) would write it: ``kubectl ...``."""

from __future__ import annotations

import shlex
from pathlib import Path

from scenarios.clusters.base import join
from scenarios.clusters.commands import (
    apply_display,
    delete_argv,
    exec_display,
    logs_display,
    patch_argv,
    pod_name_lookup,
    wait_display,
)
from scenarios.format import (
    ApplyStep,
    BackgroundStep,
    DeleteStep,
    ExecStep,
    GatewayLogStep,
    LogStep,
    PatchStep,
    RequestStep,
    RunStep,
    Scenario,
    SetStep,
    Step,
    StopStep,
    WaitStep,
)
from scenarios.format.setup_steps import FromExec, FromPodIP, FromResolve
from scenarios.runner.background import pid_file, stop_argv


def _display_path(file: str, scenario: Scenario) -> str:
    path = (scenario.path.parent / file).resolve() if scenario.path else Path(file)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _set_line(name: str, source: object) -> str:
    match source:
        case FromPodIP(pod_ip=ref):
            jsonpath = "-o jsonpath='{.items[0].status.podIP}'"
            return f'{name}="$(kubectl get pod -n {ref.namespace} -l {ref.selector} {jsonpath})"'
        case FromExec(exec=run):
            return f'{name}="$({exec_display(run.namespace, run.selector, run.container, run.command)})"'
        case FromResolve(resolve=ref):
            lookup = exec_display(ref.namespace, ref.selector, ref.container, ["getent", "hosts", ref.name])
            return f"{name}=\"$({lookup} | awk '{{print $1; exit}}')\""
    return f"{name}={shlex.quote(str(source))}"


def _background(scenario: Scenario, name: str) -> BackgroundStep | None:
    return next((s for s in scenario.steps if isinstance(s, BackgroundStep) and s.name == name), None)


def kubectl_command(step: Step, scenario: Scenario) -> str:
    """The command a reader of the article would type for ``step``."""
    match step:
        case ApplyStep(file=str() as file):
            ns = ["-n", step.namespace] if step.namespace else []
            return join(["kubectl", "apply", *ns, "-f", _display_path(file, scenario)])
        case ApplyStep():
            return apply_display((step.manifest or "").rstrip() + "\n", step.namespace)
        case DeleteStep():
            return join(delete_argv(step.object_kind, step.name, step.namespace))
        case PatchStep():
            return join(patch_argv(step.object_kind, step.name, step.namespace, step.patch, step.patch_type))
        case RunStep():
            return join(step.argv)
        case WaitStep():
            return wait_display(step.namespace, step.selector, step.timeout)
        case RequestStep():
            return exec_display(step.namespace, step.selector, step.container, step.argv)
        case ExecStep():
            return exec_display(step.namespace, step.selector, step.container, step.command)
        case GatewayLogStep():
            return logs_display(step.namespace, step.selector, step.container) + " | jq"
        case LogStep():
            return logs_display(step.namespace, step.selector, step.container)
        case SetStep():
            return "\n".join(_set_line(name, source) for name, source in step.values.items())
        case BackgroundStep():
            return exec_display(step.namespace, step.selector, step.container, step.command) + " &"
        case StopStep():
            started = _background(scenario, step.name)
            if started is None:
                return f"kill %{step.name}"
            argv = stop_argv(pid_file(step.name))
            return exec_display(started.namespace, started.selector, started.container, argv)
    raise TypeError(f"unknown step {step!r}")


__all__ = ["kubectl_command", "pod_name_lookup"]
