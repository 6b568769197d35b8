"""The demo run as a Markdown file a person can share: the summary matrix with each mode's traffic
path as a Mermaid diagram, then every step's narration, commands, output and result."""

from __future__ import annotations

from pathlib import Path

from scenarios.clusters.base import OpResult
from scenarios.demo import diagram, matrix
from scenarios.demo.model import DemoRun, StepNotes
from scenarios.demo.render import compact, pretty_json
from scenarios.demo.text import MODES, POLICIES, t
from scenarios.runner import StepResult


def fence(body: str, info: str = "") -> str:
    """A fenced block long enough that the body's own backticks cannot close it."""
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}{info}\n{body.rstrip()}\n{ticks}\n"


def step_output(step: StepResult) -> str:
    records = step.actual.get("records") if isinstance(step.actual, dict) else None
    if step.kind == "gateway_log" and records:
        return fence("\n".join(pretty_json(r) for r in records), "json")
    text = step.output.rstrip().replace("\r", "")
    if step.exit_code not in (None, 0) and "exit code" not in text:
        text += f"\ncommand terminated with exit code {step.exit_code}"
    return fence(text.strip("\n")) if text.strip() else ""


def step_markdown(step: StepResult, lang: str, backend: str = "", notes: StepNotes | None = None) -> str:
    notes = notes or StepNotes()
    if notes.repeat and not step.failed:
        mark = "↷" if step.skipped else "✓"
        return f"- {mark} `{step.kubectl.splitlines()[0]}` ({step.duration:.1f} s)\n"
    parts = []
    narration = step.narration.get(lang) or (step.title.get(lang) if step.title else "")
    if narration:
        parts.append(narration.strip() + "\n")
    if step.kubectl:
        parts.append(fence(step.kubectl, "sh"))
        if step.command and step.command != step.kubectl:
            parts.append(f"{t('ran_on', lang, backend=backend)}:\n\n" + fence(step.command, "sh"))
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
        lines += [f"- {t('look_further', lang)}: `{hint}`" for hint in notes.hints]
        parts.append("\n".join(lines) + "\n")
        if notes.log_tail:
            parts.append(fence(notes.log_tail))
    else:
        parts.append(f"✓ {t('passed', lang)} ({step.duration:.1f} s)\n")
    return "\n".join(parts)


def setup_markdown(ops: list[OpResult], lang: str) -> str:
    """The setup commands (image loads, mesh install) in one collapsed section."""
    failed = [op for op in ops if not op.ok]
    mark = f"✗ {t('failed', lang)}" if failed else f"✓ {t('passed', lang)}"
    parts = [f"<details><summary>{t('setup', lang)} ({mark})</summary>\n"]
    parts.append(fence("\n".join(op.command for op in ops), "sh"))
    for op in failed:
        output = (op.stdout + op.stderr).rstrip()
        first = op.command.splitlines()[0]
        parts.append(f"**✗ {t('failed', lang)}** `{first}`: {t('exit_code', lang)} {op.exit_code}\n")
        if output:
            parts.append(fence(output))
    parts.append("</details>\n")
    return "\n".join(parts)


def to_markdown(run: DemoRun) -> str:
    lang = run.lang
    out = [f"# {t('title', lang)}\n"]
    when = run.started.strftime("%Y-%m-%d %H:%M:%S UTC") if run.started else ""
    out.append(f"{t('backend', lang)}: `{run.backend}`" + (f" · {when}" if when else "") + "\n")
    out.append(f"## {t('summary', lang)}\n")
    out.append(matrix.to_markdown(run))
    _ok, lines = matrix.verdict(run)
    out += [line + "\n" for line in lines]
    out.append(diagram.to_markdown(run))
    if run.preparation:
        out.append(setup_markdown(run.preparation, lang))
    mode = None
    for result in run.scenarios:
        scenario = result.scenario
        if scenario.mode and scenario.mode != mode:
            out.append(f"## {MODES[scenario.mode].get(lang) or MODES[scenario.mode]['en']}\n")
            mode = scenario.mode
        title = scenario.title.get(lang) or scenario.name
        heading = POLICIES[scenario.policy].get(lang, title) if scenario.policy else title
        out.append(f"### {heading}\n")
        if heading != title:
            out.append(f"*{title}* (`{scenario.name}`)\n")
        if result.skipped:
            out.append(f"*{t('skipped', lang)}: {result.skipped}*\n")
        for step in result.steps:
            out.append(step_markdown(step, lang, run.backend, run.notes.get((step.scenario, step.index))))
    return "\n".join(out)


def write(run: DemoRun, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_markdown(run), encoding="utf-8")
    return path
