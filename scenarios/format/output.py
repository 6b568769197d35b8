"""Expectations on a command's standard output, positive and negative (``exec`` and ``stop``)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from scenarios.format.common import Model, Regex


class OutputExpectation(Model):
    #: every text must occur in stdout (a string or a list)
    stdout_contains: list[str] = []
    #: no text may occur in stdout (a string or a list)
    stdout_not_contains: list[str] = []
    #: this Python regex must match somewhere in stdout (multi-line: ^ and $ match at every line)
    stdout_matches: Regex | None = None
    #: this Python regex must match nowhere in stdout
    stdout_not_matches: Regex | None = None

    @field_validator(
        "stdout_contains", "stdout_not_contains", mode="before", json_schema_input_type=str | list[str]
    )
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def output_expected(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("stdout_contains", "stdout_not_contains", "stdout_matches", "stdout_not_matches"):
            if value := getattr(self, key):
                out[key] = list(value) if isinstance(value, list) else value
        return out
