"""The summary matrix: mode x policy x destination, observed against the article."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from scenarios.demo.model import DemoRun
from scenarios.demo.outcomes import Outcome, scenario_outcomes
from scenarios.demo.text import DISABLED_ROW, MODES, POLICIES, pick, t
from scenarios.names import EXTERNAL_HOSTS

DESTINATIONS = EXTERNAL_HOSTS
Row = tuple[str, str | None]
ROWS: tuple[Row, ...] = (
    ("disabled", None),
    ("passthrough", "permissive"),
    ("passthrough", "policy"),
    ("gateway", "permissive"),
    ("gateway", "policy"),
)

#: DESIGN section 1, the behaviour the article pins
ARTICLE: dict[Row, dict[str, Outcome]] = {
    ("disabled", None): {"httpbin.org": Outcome(exit_code=7), "httpstat.us": Outcome(exit_code=7)},
    ("passthrough", "permissive"): {"httpbin.org": Outcome(status=200), "httpstat.us": Outcome(status=200)},
    ("passthrough", "policy"): {"httpbin.org": Outcome(status=200), "httpstat.us": Outcome(status=403)},
    ("gateway", "permissive"): {
        "httpbin.org": Outcome(status=200, logged=True),
        "httpstat.us": Outcome(status=200, logged=True),
    },
    ("gateway", "policy"): {
        "httpbin.org": Outcome(status=200, logged=True),
        "httpstat.us": Outcome(status=403, logged=False),
    },
}


@dataclass
class Cell:
    observed: Outcome | None
    article: Outcome

    @property
    def ok(self) -> bool | None:
        return None if self.observed is None else self.observed.matches(self.article)

    def text(self, lang: str) -> str:
        if self.observed is None:
            return t("not_run", lang)
        words = [self.observed.label()]
        if self.observed.logged is True:
            words.append(t("logged", lang))
        elif self.observed.logged is False and self.observed.status is not None:
            words.append(t("not_logged", lang))
        text = ", ".join(words)
        if self.ok:
            return f"{text} ✓"
        return f"{text} ✗ ({t('article', lang)}: {describe(self.article, lang)})"


def describe(outcome: Outcome, lang: str) -> str:
    words = [outcome.label()]
    if outcome.logged is True:
        words.append(t("logged", lang))
    elif outcome.logged is False:
        words.append(t("not_logged", lang))
    return ", ".join(words)


def build(run: DemoRun) -> dict[Row, dict[str, Cell]]:
    observed: dict[Row, dict[str, Outcome]] = {}
    for scenario in run.scenarios:
        row = (scenario.scenario.mode, scenario.scenario.policy)
        if row in ARTICLE and not scenario.skipped:
            observed.setdefault(row, {}).update(scenario_outcomes(scenario))
    return {
        row: {dest: Cell(observed.get(row, {}).get(dest), ARTICLE[row][dest]) for dest in DESTINATIONS}
        for row in ROWS
    }


def row_labels(row: Row, lang: str) -> tuple[str, str]:
    mode, policy = row
    if mode == "disabled":
        return pick(DISABLED_ROW, lang), "-"
    return pick(MODES[mode], lang), pick(POLICIES[policy], lang) if policy else "-"


def style_of(cell: Cell) -> str:
    if cell.observed is None:
        return "dim"
    if not cell.ok:
        return "bold red"
    status = cell.observed.status
    if status is not None and 200 <= status < 300:
        return "green"
    if status == 403:
        return "yellow"
    return "magenta"


def to_table(run: DemoRun) -> Table:
    lang = run.lang
    table = Table(title=t("summary", lang), title_justify="left", show_lines=False)
    table.add_column(t("mode", lang))
    table.add_column(t("policy", lang))
    for dest in DESTINATIONS:
        table.add_column(dest)
    for row, cells in build(run).items():
        mode, policy = row_labels(row, lang)
        table.add_row(
            mode, policy, *(Text(cells[d].text(lang), style=style_of(cells[d])) for d in DESTINATIONS)
        )
    return table


def to_markdown(run: DemoRun) -> str:
    lang = run.lang
    head = [t("mode", lang), t("policy", lang), *DESTINATIONS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, cells in build(run).items():
        mode, policy = row_labels(row, lang)
        lines.append("| " + " | ".join([mode, policy, *(cells[d].text(lang) for d in DESTINATIONS)]) + " |")
    return "\n".join(lines) + "\n"


def mismatches(run: DemoRun) -> list[tuple[Row, str, Cell]]:
    """Cells whose observed result differs from the article (cells not run are not counted)."""
    return [(row, d, c) for row, cells in build(run).items() for d, c in cells.items() if c.ok is False]


def verdict(run: DemoRun) -> tuple[bool, list[str]]:
    """Whether the run reproduced the article, and the lines that say why not (or that it did)."""
    lang = run.lang
    failed = [*run.failed_setup, *run.failed_steps]
    broken = [s for s in run.scenarios if s.error]
    differ = mismatches(run)
    lines = []
    if failed:
        lines.append(t("some_failed", lang, n=len(failed)))
    lines += [f"{s.scenario.name}: {s.error}" for s in broken]
    if differ:
        lines.append(t("differ", lang, n=len(differ)))
    ok = not (failed or broken or differ)
    if lines:
        return ok, lines
    complete = all(c.observed is not None for cells in build(run).values() for c in cells.values())
    return ok, [t("all_passed" if complete else "partial_passed", lang)]
