"""The checks: what came back against what a step expects, one problem line per broken expectation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from mesh.api import accesslog
from scenarios import curl
from scenarios.clusters.base import OpResult
from scenarios.format import LineExpectation, OutputExpectation, PodIP, RecordExpectation, RequestStep
from scenarios.harness import json_object

Resolve = Callable[[PodIP], str]


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


def check_output(want: OutputExpectation, stdout: str) -> list[str]:
    """``stdout_contains`` / ``stdout_not_contains`` / ``stdout_matches`` / ``stdout_not_matches``."""
    problems = [f"stdout does not contain {text!r}" for text in want.stdout_contains if text not in stdout]
    problems += [f"stdout contains {text!r}" for text in want.stdout_not_contains if text in stdout]
    if want.stdout_matches and not re.search(want.stdout_matches, stdout, re.MULTILINE):
        problems.append(f"stdout does not match {want.stdout_matches!r}")
    if want.stdout_not_matches and (found := re.search(want.stdout_not_matches, stdout, re.MULTILINE)):
        problems.append(f"stdout matches {want.stdout_not_matches!r}: {found.group(0)!r}")
    return problems


def _same(actual: Any, expected: Any) -> bool:
    return actual == expected or (not isinstance(actual, bool) and str(actual) == str(expected))


def _describe(fields: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fields.items())


def _resolved(fields: dict[str, Any], resolve: Resolve) -> dict[str, Any]:
    return {k: resolve(v) if isinstance(v, PodIP) else v for k, v in fields.items()}


def _has(record: dict[str, Any] | None, fields: dict[str, Any]) -> bool:
    return record is not None and all(k in record and _same(record[k], v) for k, v in fields.items())


def check_records(
    records: list[dict[str, Any]],
    present: Iterable[RecordExpectation],
    absent: Iterable[RecordExpectation],
    resolve: Resolve,
) -> list[str]:
    """Gateway request records: each must keep the access-log contract; ``present`` items must
    match some record (exactly ``count`` with a count), ``absent`` items none."""
    problems = []
    for n, record in enumerate(records, start=1):
        try:
            accesslog.validate(record)
        except accesslog.InvalidRecord as exc:
            problems.append(f"record {n} breaks the access-log contract: {exc}")
    for want in present:
        fields = _resolved(want.fields, resolve)
        found = [r for r in records if _has(r, fields)]
        if want.count is None and not found:
            problems.append(f"no record with {_describe(fields)}")
        elif want.count is not None and len(found) != want.count:
            problems.append(f"{len(found)} record(s) with {_describe(fields)}, expected {want.count}")
    return problems + unwanted_records(records, absent, resolve)


def unwanted_records(
    records: list[dict[str, Any]], absent: Iterable[RecordExpectation], resolve: Resolve
) -> list[str]:
    """One problem per ``absent`` item that some record matches."""
    problems = []
    for want in absent:
        fields = _resolved(want.fields, resolve)
        found = [r for r in records if _has(r, fields)]
        if found:
            problems.append(
                f"{len(found)} record(s) with {_describe(fields)}, expected none: "
                f"{json.dumps(found[0], ensure_ascii=False)}"
            )
    return problems


def _line_matcher(want: LineExpectation, resolve: Resolve) -> tuple[str, Callable[[str], bool]]:
    if want.record is not None:
        fields = _resolved(want.record, resolve)
        return f"a record with {_describe(fields)}", lambda line: _has(json_object(line), fields)
    if want.matches is not None:
        pattern = re.compile(want.matches)
        return f"a line matching {want.matches!r}", lambda line: pattern.search(line) is not None
    text = want.text or ""
    return f"a line containing {text!r}", lambda line: text in line


def check_lines(
    lines: list[str], present: Iterable[LineExpectation], absent: Iterable[LineExpectation], resolve: Resolve
) -> list[str]:
    """Log lines: ``present`` items must match some line (exactly ``count`` with a count), ``absent``
    items none."""
    problems = []
    for want in present:
        what, matches = _line_matcher(want, resolve)
        found = [line for line in lines if matches(line)]
        if want.count is None and not found:
            problems.append(f"no {what.removeprefix('a ')}")
        elif want.count is not None and len(found) != want.count:
            problems.append(f"{len(found)} line(s), expected {want.count}: {what}")
    return problems + unwanted_lines(lines, absent, resolve)


def unwanted_lines(lines: list[str], absent: Iterable[LineExpectation], resolve: Resolve) -> list[str]:
    """One problem per ``absent`` item that some line matches."""
    problems = []
    for want in absent:
        what, matches = _line_matcher(want, resolve)
        found = [line for line in lines if matches(line)]
        if found:
            problems.append(f"{len(found)} line(s), expected none: {what}: {found[0]}")
    return problems
