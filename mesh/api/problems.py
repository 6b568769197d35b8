"""What validation reports: ``Problem`` (one rule broken by one object) and how messages name
objects (``describe``, ``key``) and fields (``field_path``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mesh.api.resources import Ref


@dataclass(frozen=True)
class Problem:
    """One rule broken by one object."""

    object: str  # "Egress curl/httpbin-80"
    field: str  # "spec.ports[0].number" ("" for the whole object)
    message: str  # "must be between 1 and 65535 (got 0)"
    source: str = ""  # "egress.yaml: document 2 (line 14)" when known

    def __str__(self) -> str:
        where = f"{self.object}: {self.field}" if self.field else self.object
        return f"{self.source}: {where}: {self.message}" if self.source else f"{where}: {self.message}"


class InvalidObject(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class ValidationResult:
    valid: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def describe(obj: Any) -> str:
    """``Egress curl/httpbin-80``: how messages name an object."""
    if not isinstance(obj, dict) or not obj.get("kind"):
        return "document"
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return str(Ref(str(obj["kind"]), str(meta.get("namespace") or ""), str(meta.get("name") or "?")))


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    """Identity of an object within a set: (kind, namespace, name)."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return (str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def field_path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
