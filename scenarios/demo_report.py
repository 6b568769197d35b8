"""The demo run as a Markdown file a person can share: commands, outputs, the summary matrix."""

from __future__ import annotations

from pathlib import Path

from scenarios import demo_matrix
from scenarios.demo_model import GATEWAY_LOG_KINDS, DemoRun, StepView, json_records
from scenarios.demo_render import compact, pretty_json
from scenarios.demo_text import MODES, POLICIES, pick, t


def fence(body: str, info: str = "") -> str:
    """A fenced block long enough that the body's own backticks cannot close it."""
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}{info}\n{body.rstrip()}\n{ticks}\n"


def step_output(step: StepView) -> str:
    if step.kind in GATEWAY_LOG_KINDS and (records := json_records(step.stdout)):
        return fence("\n".join(pretty_json(r) for r in records), "json")
    text = step.stdout.rstrip().replace("\r", "")
    if step.exit_code not in (None, 0):
        text += f"\ncommand terminated with exit code {step.exit_code}"
        if step.stderr.strip():
            text += "\n" + step.stderr.rstrip()
    return fence(text.strip("\n")) if text.strip() else ""


def step_markdown(step: StepView, lang: str, backend: str = "") -> str:
    if step.repeat and not step.failed:
        mark = "↷" if step.skipped else "✓"
        return f"- {mark} `{step.command.splitlines()[0]}` ({step.duration:.1f} s)\n"
    parts = []
    narration = pick(step.narration, lang) or pick(step.title, lang)
    if narration:
        parts.append(narration.strip() + "\n")
    if step.command:
        parts.append(fence(step.command, "sh"))
        if step.backend_command and step.backend_command != step.command:
            parts.append(f"{t('ran_on', lang, backend=backend)}:\n\n" + fence(step.backend_command, "sh"))
    if step.skipped:
        parts.append(f"*{t('skipped', lang)}: {step.skipped}*\n")
        return "\n".join(parts)
    output = step_output(step)
    if output:
        parts.append(output)
    if step.failed:
        lines = [f"**✗ {t('failed', lang)}** ({step.duration:.1f} s)"]
        lines += [f"- {problem}" for problem in step.problems]
        if step.expected is not None:
            lines.append(f"- {t('expected', lang)}: `{compact(step.expected)}`")
        if step.actual is not None:
            lines.append(f"- {t('actual', lang)}: `{compact(step.actual)}`")
        lines += [f"- {t('look_further', lang)}: `{hint}`" for hint in step.hints]
        parts.append("\n".join(lines) + "\n")
        if step.log_tail:
            parts.append(fence(step.log_tail))
    else:
        parts.append(f"✓ {t('passed', lang)} ({step.duration:.1f} s)\n")
    return "\n".join(parts)


def setup_markdown(steps: list[StepView], lang: str) -> str:
    """The setup commands (image loads, mesh install) in one collapsed section."""
    failed = [s for s in steps if s.failed]
    mark = f"✗ {t('failed', lang)}" if failed else f"✓ {t('passed', lang)}"
    parts = [f"<details><summary>{t('setup', lang)} ({mark})</summary>\n"]
    parts.append(fence("\n".join(s.command for s in steps), "sh"))
    for step in failed:
        parts.append(step_markdown(step, lang))
    parts.append("</details>\n")
    return "\n".join(parts)


def to_markdown(run: DemoRun) -> str:
    lang = run.lang
    out = [f"# {t('title', lang)}\n"]
    when = run.started.strftime("%Y-%m-%d %H:%M:%S UTC") if run.started else ""
    out.append(f"{t('backend', lang)}: `{run.backend}`" + (f" · {when}" if when else "") + "\n")
    out.append(f"## {t('summary', lang)}\n")
    out.append(demo_matrix.to_markdown(run))
    _ok, lines = demo_matrix.verdict(run)
    out += [line + "\n" for line in lines]
    if run.preparation:
        out.append(setup_markdown(run.preparation, lang))
    mode = None
    for scenario in run.scenarios:
        if scenario.mode and scenario.mode != mode:
            out.append(f"## {pick(MODES[scenario.mode], lang)}\n")
            mode = scenario.mode
        title = pick(scenario.title, lang) or scenario.name
        heading = pick(POLICIES[scenario.policy], lang) if scenario.policy else title
        out.append(f"### {heading}\n")
        if heading != title:
            out.append(f"*{title}* (`{scenario.name}`)\n")
        if scenario.skipped:
            out.append(f"*{t('skipped', lang)}: {scenario.skipped}*\n")
        for step in scenario.steps:
            out.append(step_markdown(step, lang, run.backend))
    return "\n".join(out)


def write(run: DemoRun, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_markdown(run), encoding="utf-8")
    return path
