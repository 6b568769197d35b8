"""Values carried from one step to the next: a ``set`` step stores them, later steps write
``{{name}}`` in any string (URLs, commands, manifests, expected values, narrations)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from scenarios.format.common import VARIABLE, Step, StepMeta

T = TypeVar("T")


def references(value: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(name, location)`` of every ``{{name}}`` in ``value`` (strings, lists, mappings, models)."""
    if isinstance(value, str):
        for match in VARIABLE.finditer(value):
            yield match.group(1), where
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            alias = type(value).model_fields[name].alias or name
            yield from references(getattr(value, name), (*where, alias))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from references(getattr(value, field.name), (*where, field.name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from references(item, (*where, str(key)))
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from references(item, (*where, str(n)))


def substitute(value: T, values: Mapping[str, str]) -> T:
    """``value`` with every ``{{name}}`` replaced; models are copied, never re-validated."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), value)  # type: ignore[return-value]
    if isinstance(value, BaseModel):
        update = {name: substitute(getattr(value, name), values) for name in type(value).model_fields}
        return value.model_copy(update=update)  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: substitute(getattr(value, f.name), values) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)  # type: ignore[return-value]
    if isinstance(value, Mapping):
        return {k: substitute(v, values) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [substitute(v, values) for v in value]  # type: ignore[return-value]
    return value


def resolved(step: Step, values: Mapping[str, str]) -> Step:
    """The step as it runs: its parameters and texts with the values set so far."""
    if not values:
        return step
    meta = step._meta
    texts = StepMeta(meta.index, substitute(meta.narration, values), substitute(meta.title, values))
    return substitute(step, values).with_meta(texts)
