"""Validation errors in words a scenario author reads: the location as the path of keys in the file
(``request/expect/0/status``), then the rule broken (``99 is less than the minimum of 100``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

#: union branch tags start with this; they are pydantic's, never a key the author wrote
TAG = "·"


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the step."""


def tag(name: str) -> str:
    return TAG + name


def _rule(error: dict[str, Any]) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    match kind:
        case "missing":
            return f"{str(error['loc'][-1])!r} is a required property"
        case "greater_than_equal":
            return f"{value!r} is less than the minimum of {ctx['ge']}"
        case "greater_than":
            return f"{value!r} is less than or equal to the minimum of {ctx['gt']}"
        case "less_than_equal":
            return f"{value!r} is greater than the maximum of {ctx['le']}"
        case "string_pattern_mismatch":
            return f"{value!r} does not match {ctx['pattern']!r}"
        case "literal_error":
            return f"{value!r} is not one of [{ctx['expected'].replace(' or ', ', ')}]"
        case "extra_forbidden":
            return f"unknown key {str(error['loc'][-1])!r}"
        case "too_short" | "string_too_short":
            return f"{value!r} should be non-empty"
        case "value_error":
            return str(ctx.get("error", error["msg"]))
    return f"{error['msg']} (got {value!r})" if value is not None else error["msg"]


def describe(exc: ValidationError, prefix: Sequence[str] = (), wrapper: str | None = None) -> str:
    """The first error of ``exc`` as ``LOCATION: RULE``. ``prefix`` is where the validated value sits
    in the file; ``wrapper`` a field the value was put into before validation (not written by the
    author); record expectations' ``fields`` wrapper is left out too."""
    error = exc.errors(include_url=False)[0]
    loc = list(error["loc"])
    if error["type"] == "value_error" and not loc:
        return _rule(error)  # a rule of the whole kind: its message names the kind
    if error["type"] in ("missing", "extra_forbidden"):
        loc = loc[:-1]  # the rule names the key
    if wrapper and loc[:1] == [wrapper]:
        loc = loc[1:]
    parts = [str(p) for n, p in enumerate(loc) if not _hidden(loc, n)]
    location = "/".join([*prefix, *parts])
    return f"{location}: {_rule(error)}" if location else _rule(error)


def _hidden(loc: list[Any], n: int) -> bool:
    part = loc[n]
    if isinstance(part, str) and (part.startswith(TAG) or part == "[key]"):
        return True  # a union's branch, or "the key itself" (the key is the part before)
    # a record expectation is validated as {fields: {...}, count}: "fields" right after its position
    return part == "fields" and n > 0 and isinstance(loc[n - 1], int)
