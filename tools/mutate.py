"""Mutation testing of the security-critical modules with mutmut (`nox -s mutate`, docs/mutation.md).

Each module listed in tools/mutation.toml is mutated in its own copy of the repository,
build/mutate/<name>/, and judged by the unit tests listed for it. The score is
killed / (mutants - equivalent), where timeouts count as killed and mutants no test reaches as
survivors; equivalent mutants are listed with a reason in tools/mutation-equivalent.toml.

    python tools/mutate.py [NAME ...] [--ci] [--floor PCT] [--json FILE] [--max-children N]
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tools" / "mutation.toml"
EQUIVALENT = ROOT / "tools" / "mutation-equivalent.toml"
WORK = ROOT / "build" / "mutate"
COPIED = ("mesh", "tests")
# Appended to the copy's conftest.py. Each mutant's tests run fastest first: mutmut passes them in no
# particular order and stops at the first failure, so a killed mutant costs its fastest failing test.
# A test that runs over TEST_LIMIT seconds fails: mutmut's forced-failure run (every mutated
# function raising) has no time limit of its own, and a test without timeouts could wait forever.
TEST_LIMIT = 20
CONFTEST = f"""

import json as _json
import signal as _signal

import pytest as _pytest


def pytest_collection_modifyitems(items):  # added by tools/mutate.py
    try:
        with open("mutmut-stats.json") as stats:  # mutmut runs the tests in mutants/
            durations = _json.load(stats)["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


def _over_time(signum, frame):
    raise TimeoutError("the test ran over {TEST_LIMIT} s (tools/mutate.py)")


@_pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # added by tools/mutate.py
    previous = _signal.signal(_signal.SIGALRM, _over_time)
    _signal.alarm({TEST_LIMIT})
    try:
        yield
    finally:
        _signal.alarm(0)
        _signal.signal(_signal.SIGALRM, previous)
"""
KILLED = {"killed", "timeout", "caught by type check"}


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class Module:
    name: str
    path: str
    tests: tuple[str, ...]
    ci: bool
    floor: float | None  # this module's own floor for --ci (None: the config's ci_floor)


@dataclass(frozen=True)
class Mutant:
    name: str  # mutmut's key, e.g. mesh.proxy.match.x_decide__mutmut_3
    status: str
    function: str  # "decide" or "ClientConnection.serve_http"
    line: int
    before: str
    after: str

    def matches(self, entry: dict[str, str], path: str) -> bool:
        return (entry.get("file"), entry.get("function"), entry.get("before"), entry.get("after")) == (
            path,
            self.function,
            self.before,
            self.after,
        )


@dataclass
class Score:
    module: str
    path: str
    mutants: int = 0
    killed: int = 0
    timeouts: int = 0
    equivalent: int = 0
    survivors: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def percent(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 * self.killed / counted if counted else 100.0


def load_config() -> tuple[dict[str, Module], float]:
    data = tomllib.loads(CONFIG.read_text())
    modules = {}
    for name, entry in data.get("modules", {}).items():
        path, tests = entry.get("path"), entry.get("tests") or []
        if not path or not (ROOT / path).is_file():
            raise UsageError(f"{CONFIG.name}: modules.{name}.path: no such file {path!r}")
        missing = [t for t in tests if not (ROOT / t.split("::")[0]).exists()]
        if not tests or missing:
            raise UsageError(f"{CONFIG.name}: modules.{name}.tests: missing or unknown {missing or tests}")
        floor = entry.get("floor")
        modules[name] = Module(
            name, path, tuple(tests), bool(entry.get("ci")), None if floor is None else float(floor)
        )
    return modules, float(data.get("ci_floor", 90.0))


def load_equivalents() -> list[dict[str, str]]:
    entries = tomllib.loads(EQUIVALENT.read_text()).get("equivalent", [])
    for i, entry in enumerate(entries):
        missing = [k for k in ("file", "function", "before", "after", "reason") if k not in entry]
        if missing:
            raise UsageError(f"{EQUIVALENT.name}: equivalent[{i}]: missing {', '.join(missing)}")
    return entries


def toml_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def prepare(module: Module) -> Path:
    """A fresh copy of the code and tests, with a pyproject.toml that points mutmut at ``module``."""
    work = WORK / module.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    conftest = ROOT / "conftest.py"
    (work / "conftest.py").write_text((conftest.read_text() if conftest.exists() else "") + CONFTEST)
    pyproject = (ROOT / "pyproject.toml").read_text()
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["mesh"]\n'
        f"only_mutate = {toml_list([module.path])}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(module.tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
        'also_copy = ["conftest.py"]\n'
        "use_git_change_detection = false\n"
        # Fork each mutant's test process from a server that has only collected the tests: forking
        # from the process that ran them all leaves caches warm (functools.cache), and a mutant in
        # a function whose result is cached there is never run.
        'process_isolation = "forkserver"\n'
        # A mutant that hangs counts as killed after 4 x (its tests' normal time + 3 s) of wall time
        # (mutmut's default, 15 x (time + 1 s), spends most of a run waiting on the few that hang).
        "timeout_multiplier = 4.0\n"
        "timeout_constant = 3.0\n"
    )
    (work / "pyproject.toml").write_text(pyproject)
    return work


def run_mutmut(module: Module, work: Path, max_children: int) -> None:
    log = work / "mutmut.log"
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-30:]
        failed = f"mutmut failed on {module.path} (exit {done.returncode}); the end of {log}:\n"
        raise UsageError(failed + "\n".join(tail))


def function_lines(source: str) -> dict[str, int]:
    """The ``def`` line of every function and method: {"decide": 120, "Sidecar.apply": 60}."""
    lines: dict[str, int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines[node.name] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines[f"{node.name}.{item.name}"] = item.lineno
    return lines


def describe_mutant(name: str, status: str, path: str, def_lines: dict[str, int]) -> Mutant:
    """Where a mutant is (file line) and what it changes, from mutmut's copy of the function."""
    import libcst as cst
    from mutmut.mutation.diff_apply import (
        read_functions_from_index,
        read_mutant_function,
        read_mutants_module,
        read_original_function,
    )
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    function, class_name = orig_function_and_class_names_from_key(name)
    qualified = f"{class_name}.{function}" if class_name else function
    pair = read_functions_from_index(name, path)
    if pair is None:
        module = read_mutants_module(path)
        pair = (read_original_function(module, name), read_mutant_function(module, name))
    orig, mutant = (cst.Module([f]).code.splitlines() for f in pair)
    def_index = next(i for i, text in enumerate(orig) if text.lstrip().startswith(("def ", "async def ")))
    before: list[str] = []
    after: list[str] = []
    first = None
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=orig, b=mutant, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        first = i1 if first is None else first
        before += [t.strip() for t in orig[i1:i2]]
        after += [t.strip() for t in mutant[j1:j2]]
    line = def_lines.get(qualified, 0) + ((first or def_index) - def_index)
    return Mutant(name, status, qualified, line, "\n".join(before), "\n".join(after))


def collect(module: Module, work: Path, equivalents: list[dict[str, str]]) -> tuple[Score, list[str]]:
    """The module's score from mutmut's results, and warnings about stale equivalence entries."""
    from mutmut.stats import status_by_exit_code

    meta = json.loads((work / "mutants" / (module.path + ".meta")).read_text())
    score = Score(module.name, module.path)
    def_lines = function_lines((ROOT / module.path).read_text())
    listed = [e for e in equivalents if e["file"] == module.path]
    used: set[int] = set()
    warnings = []
    cwd = os.getcwd()
    os.chdir(work)  # mutmut's readers work relative to the directory it ran in
    try:
        for name, code in sorted(meta["exit_code_by_key"].items(), key=lambda kv: mutant_order(kv[0])):
            status = status_by_exit_code[code]
            score.mutants += 1
            if status in KILLED:
                score.killed += 1
                score.timeouts += status == "timeout"
            if status in KILLED and not listed:
                continue
            mutant = describe_mutant(name, status, module.path, def_lines)
            hits = [i for i, e in enumerate(listed) if mutant.matches(e, module.path)]
            used.update(hits)
            if hits and status in KILLED:
                warnings.append(f"{module.path}:{mutant.line}: listed as equivalent, but killed")
            elif hits:
                score.equivalent += 1
            elif status not in KILLED:
                score.survivors.append(mutant)
    finally:
        os.chdir(cwd)
    for i, entry in enumerate(listed):
        if i not in used:
            warnings.append(f"{module.path}: equivalent entry not generated any more: {entry['before']!r}")
    return score, warnings


def mutant_order(name: str) -> tuple[str, int]:
    base, _, number = name.rpartition("__mutmut_")
    return base, int(number) if number.isdigit() else 0


def render(scores: list[Score], floors: dict[str, float | None]) -> str:
    lines = []
    for s in scores:
        for m in sorted(s.survivors, key=lambda m: m.line):
            lines.append(f"{s.path}:{m.line} ({m.function}) {m.status}")
            lines += [f"    - {t}" for t in m.before.splitlines()] or ["    - (nothing)"]
            lines += [f"    + {t}" for t in m.after.splitlines()] or ["    + (deleted)"]
    if lines:
        lines.insert(0, "Surviving mutants:")
        lines.append("")
    columns = ("mutants", "killed", "timeout", "equiv.", "survived", "score")
    header = f"{'module':<34} " + " ".join(f"{c:>8}" for c in columns)
    lines += [header, "-" * len(header)]
    for s in scores:
        floor = floors.get(s.module)
        mark = f"  < floor {floor:g}%" if floor is not None and s.percent < floor else ""
        counts = (s.mutants, s.killed, s.timeouts, s.equivalent, len(s.survivors))
        lines.append(f"{s.path:<34} " + " ".join(f"{c:>8}" for c in counts) + f" {s.percent:>7.1f}%{mark}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/mutate.py", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("names", nargs="*", help="modules to mutate (names in tools/mutation.toml; default: all)")
    add("--ci", action="store_true", help="only the ci = true modules; fail below the config's ci_floor")
    add("--floor", type=float, help="fail when a module scores below this percentage")
    add("--json", type=Path, help="also write the scores and the survivors to this file")
    add("--max-children", type=int, default=os.cpu_count() or 2, help="test processes in parallel")
    args = parser.parse_args(argv)
    try:
        modules, ci_floor = load_config()
        equivalents = load_equivalents()
        unknown = [n for n in args.names if n not in modules]
        if unknown:
            raise UsageError(f"unknown module {', '.join(unknown)}; known: {', '.join(modules)}")
        chosen = [modules[n] for n in args.names] or [m for m in modules.values() if m.ci or not args.ci]
        floors = {
            m.name: args.floor
            if args.floor is not None
            else (ci_floor if m.floor is None else m.floor)
            if args.ci
            else None
            for m in chosen
        }
        scores, warnings = [], []
        for module in chosen:
            print(f"mutating {module.path} against {len(module.tests)} test file(s) ...", flush=True)
            started = time.monotonic()
            work = prepare(module)
            run_mutmut(module, work, args.max_children)
            score, found = collect(module, work, equivalents)
            score.seconds = time.monotonic() - started
            print(f"  {score.mutants} mutants, {score.percent:.1f}% in {score.seconds:.0f}s", flush=True)
            scores.append(score)
            warnings += found
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(render(scores, floors))
    for warning in warnings:
        print(f"warning: {warning}")
    if args.json:
        report = [asdict(s) | {"percent": round(s.percent, 1)} for s in scores]
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    below = [s for s in scores if floors[s.module] is not None and s.percent < floors[s.module]]
    if below:
        names = ", ".join(f"{s.path} {s.percent:.1f}% < {floors[s.module]:g}%" for s in below)
        print(f"FAILED: below the floor: {names}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
